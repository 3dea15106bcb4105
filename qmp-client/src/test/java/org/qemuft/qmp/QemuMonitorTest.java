package org.qemuft.qmp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The typed layer against a peer that answers with replies recorded from Debian 12's QEMU 7.2.22
 * (the strings below are verbatim transcripts, ids aside).
 */
@SuppressWarnings("try") // a peer in try-with-resources is there to be closed, not used
class QemuMonitorTest {
  private static final Duration T = Duration.ofSeconds(20);

  @TempDir Path dir;

  /** Every request the peer received, in order. */
  private final List<ObjectNode> received = new CopyOnWriteArrayList<>();

  private Path sock() {
    return dir.resolve("qmp.sock");
  }

  @AfterEach
  void noClientThreadIsLeft() {
    assertThat(QmpClientTest.clientThreads(sock())).isEmpty();
  }

  /** A peer that answers each command with {@code answer.apply(request)} (raw messages, CR LF added). */
  private TestPeer qemu(Answer answer) throws Exception {
    return TestPeer.start(sock(), c -> {
      c.handshake();
      ObjectNode r;
      while ((r = c.read()) != null) {
        received.add(r);
        for (String m : answer.messages(r, r.get("id").toString())) {
          c.send(m);
        }
      }
    });
  }

  interface Answer {
    List<String> messages(ObjectNode request, String id);
  }

  private static String cmd(ObjectNode r) {
    return r.path("execute").asText();
  }

  @Test
  void queriesBecomeRecords() throws Exception {
    try (TestPeer peer = qemu((r, id) -> List.of(switch (cmd(r)) {
          case "query-status" -> "{\"return\": {\"status\": \"restore-vm\", \"singlestep\": false, \"running\": false}, \"id\": " + id + "}";
          case "query-version" -> "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"id\": " + id + "}";
          case "query-replay" -> "{\"return\": {\"icount\": 1612776534, \"mode\": \"record\", \"filename\": \"run/rr.bin\"}, \"id\": " + id + "}";
          case "query-block" -> "{\"return\": [{\"device\": \"snapstore\", \"locked\": false, \"removable\": true, \"inserted\": {\"iops_rd\": 0, \"detect_zeroes\": \"off\", \"image\": {\"virtual-size\": 67108864, \"filename\": \"run/store.qcow2\", \"cluster-size\": 65536, \"format\": \"qcow2\", \"actual-size\": 200704, \"format-specific\": {\"type\": \"qcow2\", \"data\": {\"compat\": \"1.1\", \"compression-type\": \"zlib\", \"lazy-refcounts\": false, \"refcount-bits\": 16, \"corrupt\": false, \"extended-l2\": false}}, \"dirty-flag\": false}, \"iops_wr\": 0, \"ro\": false, \"node-name\": \"#block147\", \"backing_file_depth\": 0, \"drv\": \"qcow2\", \"iops\": 0, \"bps_wr\": 0, \"write_threshold\": 0, \"encrypted\": false, \"bps\": 0, \"bps_rd\": 0, \"cache\": {\"no-flush\": false, \"direct\": false, \"writeback\": true}, \"file\": \"run/store.qcow2\"}, \"type\": \"unknown\"},"
              + " {\"device\": \"cd0\", \"locked\": false, \"removable\": true, \"qdev\": \"/machine/unattached/device[23]\", \"type\": \"unknown\"}], \"id\": " + id + "}";
          default -> "{\"return\": {}, \"id\": " + id + "}";
        }));
        QemuMonitor m = QemuMonitor.connect(sock(), T)) {
      assertThat(m.queryStatus()).isEqualTo(new VmStatus("restore-vm", false));
      assertThat(m.queryVersion()).isEqualTo(new QemuVersion(7, 2, 22, "Debian 1:7.2+dfsg-7+deb12u18+b3"));
      assertThat(m.queryVersion().toString()).isEqualTo("7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
      assertThat(m.queryReplay()).isEqualTo(new ReplayInfo("record", "run/rr.bin", 1612776534L));
      assertThat(m.queryBlock()).containsExactly(
          new BlockInfo("snapstore", null, "#block147", "run/store.qcow2", "qcow2", false),
          new BlockInfo("cd0", "/machine/unattached/device[23]", null, null, null, false));
      m.stop();
      m.cont();
      m.systemReset();
      m.replayBreak(99);
      m.announceSelf();
      assertThat(received.stream().map(QemuMonitorTest::cmd).toList()).endsWith(
          "stop", "cont", "system_reset", "replay-break", "announce-self");
      assertThat(received.get(received.size() - 2).path("arguments").path("icount").asLong()).isEqualTo(99);
      assertThat(received.getLast().path("arguments").toString())
          .isEqualTo("{\"initial\":50,\"max\":550,\"rounds\":5,\"step\":100}");
    }
  }

  @Test
  void queryReplayWithoutAFile() throws Exception {
    try (TestPeer peer = qemu((r, id) -> List.of("{\"return\": {\"icount\": 0, \"mode\": \"none\"}, \"id\": " + id + "}"));
        QemuMonitor m = QemuMonitor.connect(sock(), T)) {
      assertThat(m.queryReplay()).isEqualTo(new ReplayInfo("none", null, 0));
    }
  }

  @Test
  void hmpOutputThatReportsAnErrorIsAnErrorReply() throws Exception {
    try (TestPeer peer = qemu((r, id) -> {
          String line = r.path("arguments").path("command-line").asText();
          String out = switch (line) {
            case "loadvm nope" -> "Error: Snapshot 'nope' does not exist in one or more devices\\r\\n";
            case "nosuch" -> "unknown command: 'nosuch'\\r\\n";
            case "savevm a b" -> "savevm: extraneous characters at the end of line\\r\\nTry \\\"help savevm\\\" for more information\\r\\n";
            case "info snapshots" -> "List of snapshots present on all disks:\\r\\nID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\\r\\n--        t1 91.4 MiB 2026-12-07 18:19:44 00:00:06.777 1612827646\\r\\n";
            default -> "";
          };
          return List.of("{\"return\": \"" + out + "\", \"id\": " + id + "}");
        });
        QemuMonitor m = QemuMonitor.connect(sock(), T)) {
      assertThat(m.hmp("savevm t1")).isEmpty();
      assertThat(m.hmp("info snapshots")).contains("\n--        t1 ").doesNotContain("\r");
      assertThatThrownBy(() -> m.hmp("loadvm nope"))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("HMP 'loadvm nope' printed an error")
          .hasMessageContaining(sock().toString())
          .satisfies(e -> {
            QmpErrorException q = (QmpErrorException) e;
            assertThat(q.errorClass()).isEqualTo("GenericError");
            assertThat(q.description()).isEqualTo("Error: Snapshot 'nope' does not exist in one or more devices");
            assertThat(q.command()).isEqualTo("human-monitor-command");
          });
      assertThatThrownBy(() -> m.hmp("nosuch"))
          .isExactlyInstanceOf(QmpErrorException.class)
          .satisfies(e -> assertThat(((QmpErrorException) e).errorClass()).isEqualTo("CommandNotFound"));
      assertThatThrownBy(() -> m.hmp("savevm a b"))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("extraneous characters");
    }
  }

  @Test
  void hmpErrorForms() {
    assertThat(QemuMonitor.hmpErrorClass("Command \"foo\" is not available.\n")).isEqualTo("CommandNotFound");
    assertThat(QemuMonitor.hmpErrorClass("Command 'savevm' not available until machine initialization has completed.\n"))
        .isEqualTo("CommandNotFound");
    assertThat(QemuMonitor.hmpErrorClass("Parameter 'name' is missing\nTry \"help delvm\" for more information\n"))
        .isEqualTo("GenericError");
    assertThat(QemuMonitor.hmpErrorClass("Record/replay: Error: is just a word here\n")).isNull();
    assertThat(QemuMonitor.hmpErrorClass("")).isNull();
  }

  /** The JOB_STATUS_CHANGE sequence and query-jobs answers of a real snapshot-load of a missing tag. */
  @Test
  void aFailedSnapshotJobIsDismissedAndReportsQemusError() throws Exception {
    try (TestPeer peer = qemu((r, id) -> {
          String job = r.path("arguments").path("job-id").asText();
          return switch (cmd(r)) {
            case "snapshot-load" -> List.of(
                event("JOB_STATUS_CHANGE", "{\"status\": \"created\", \"id\": \"" + job + "\"}"),
                event("JOB_STATUS_CHANGE", "{\"status\": \"running\", \"id\": \"" + job + "\"}"),
                event("STOP", null),
                "{\"return\": {}, \"id\": " + id + "}",
                event("JOB_STATUS_CHANGE", "{\"status\": \"aborting\", \"id\": \"" + job + "\"}"),
                event("JOB_STATUS_CHANGE", "{\"status\": \"concluded\", \"id\": \"" + job + "\"}"));
            case "query-jobs" -> List.of("{\"return\": [{\"current-progress\": 1, \"status\": \"concluded\","
                + " \"total-progress\": 1, \"type\": \"snapshot-load\", \"id\": \"" + lastJob() + "\", \"error\":"
                + " \"Snapshot 'nope' does not exist in one or more devices\"}], \"id\": " + id + "}");
            default -> List.of("{\"return\": {}, \"id\": " + id + "}");
          };
        });
        QemuMonitor m = QemuMonitor.connect(sock(), T)) {
      assertThatThrownBy(() -> m.snapshotLoad("nope", "#block147", List.of("#block147"), T))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("refused 'snapshot-load' (job qemuft-snapshot-load-")
          .hasMessageContaining("tag 'nope'")
          .hasMessageContaining("Snapshot 'nope' does not exist in one or more devices");
      ObjectNode load = received.stream().filter(r -> cmd(r).equals("snapshot-load")).findFirst().orElseThrow();
      assertThat(load.path("arguments").path("vmstate").asText()).isEqualTo("#block147");
      assertThat(load.path("arguments").path("devices").toString()).isEqualTo("[\"#block147\"]");
      ObjectNode dismiss = received.getLast();
      assertThat(cmd(dismiss)).isEqualTo("job-dismiss");
      assertThat(dismiss.path("arguments").path("id").asText()).isEqualTo(load.path("arguments").path("job-id").asText());
    }
  }

  @Test
  void aSnapshotJobThatDoesNotConcludeInTimeIsReportedAndLeftAlone() throws Exception {
    try (TestPeer peer = qemu((r, id) -> switch (cmd(r)) {
          case "query-jobs" -> List.of("{\"return\": [{\"current-progress\": 0, \"status\": \"running\","
              + " \"total-progress\": 1, \"type\": \"snapshot-save\", \"id\": \"" + lastJob() + "\"}], \"id\": " + id + "}");
          default -> List.of("{\"return\": {}, \"id\": " + id + "}");
        });
        QemuMonitor m = QemuMonitor.connect(sock(), T)) {
      assertThatThrownBy(() -> m.snapshotSave("t1", "#block1", List.of("#block1"), Duration.ofMillis(1500)))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("snapshot-save (job qemuft-snapshot-save-")
          .hasMessageContaining("did not conclude within 1500 ms on " + sock())
          .hasMessageContaining("its status is 'running'");
      assertThat(received.stream().map(QemuMonitorTest::cmd)).doesNotContain("job-dismiss");
    }
  }

  @Test
  void quitSucceedsWhenQemuClosesTheConnectionBeforeReplying() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.event("SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
          c.close();
        });
        QemuMonitor m = QemuMonitor.connect(sock(), T)) {
      m.quit();
      assertThat(m.client().isOpen()).isFalse();
      assertThatThrownBy(m::quit).isExactlyInstanceOf(QmpConnectionException.class);
    }
  }

  private String lastJob() {
    return received.stream().map(r -> r.path("arguments").path("job-id").asText()).filter(s -> !s.isEmpty())
        .reduce((a, b) -> b).orElse("");
  }

  private static String event(String name, String data) {
    return "{\"timestamp\": {\"seconds\": 1796667591, \"microseconds\": 329263}, \"event\": \"" + name + "\""
        + (data == null ? "" : ", \"data\": " + data) + "}";
  }
}
