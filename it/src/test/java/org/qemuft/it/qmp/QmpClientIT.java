package org.qemuft.it.qmp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.Guest;
import org.qemuft.qmp.BlockInfo;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.qmp.QemuVersion;
import org.qemuft.qmp.QmpClient;
import org.qemuft.qmp.QmpConnectionException;
import org.qemuft.qmp.QmpErrorException;
import org.qemuft.qmp.QmpEvent;
import org.qemuft.qmp.ReplayInfo;
import org.qemuft.qmp.VmStatus;

/** The QMP client against real QEMU 7.2 running the real guest. */
class QmpClientIT {
  /** Failure detectors, not performance figures: the machine is shared and slow. */
  private static final Duration BOOT = Duration.ofSeconds(120);
  private static final Duration T = Duration.ofSeconds(60);
  private static final String READY = "QEMUFT-READY";

  @TempDir Path tmp;

  private QemuProcess boot(QemuLaunch launch) throws Exception {
    QemuProcess qemu = launch.start();
    try {
      qemu.awaitQmp(BOOT);
      return qemu;
    } catch (RuntimeException | InterruptedException e) {
      qemu.close();
      throw e;
    }
  }

  private static QmpEvent await(BlockingQueue<QmpEvent> events, String name) throws InterruptedException {
    long deadline = System.nanoTime() + T.toNanos();
    while (System.nanoTime() < deadline) {
      QmpEvent e = events.poll(1, TimeUnit.SECONDS);
      if (e != null && e.name().equals(name)) {
        return e;
      }
    }
    throw new AssertionError("no " + name + " event within " + T);
  }

  @Test
  void greetingVersionStatusStopAndContWithTheirEvents() throws Exception {
    try (QemuProcess qemu = boot(QemuLaunch.of(Guest.spec(""), tmp.resolve("run"), "qft-qmp-basic"));
        QemuMonitor qmp = QemuMonitor.connect(qemu.qmpSocket(), T)) {
      QemuVersion v = qmp.client().greeting().version();
      assertThat(v.major()).isEqualTo(7);
      assertThat(v.minor()).isEqualTo(2);
      assertThat(qmp.queryVersion()).isEqualTo(v);
      assertThat(qmp.queryVersion().packageName()).contains("Debian");
      assertThat(qmp.client().greeting().capabilities()).contains("oob");
      qemu.awaitSerial(READY, BOOT);
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("running", true));
      // QEMU serves one QMP client at a time: a second one is queued and never greeted.
      assertThatThrownBy(() -> QmpClient.connect(qemu.qmpSocket(), Duration.ofSeconds(2)))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("no QMP greeting within 2000 ms")
          .hasMessageContaining("is another client connected");
      assertThat(qmp.queryStatus().running()).isTrue();

      BlockingQueue<QmpEvent> events = new LinkedBlockingQueue<>();
      qmp.client().onEvent(null, events::add);
      qmp.stop();
      assertThat(await(events, "STOP").timestamp()).isNotNull();
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("paused", false));
      qmp.cont();
      await(events, "RESUME");
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("running", true));
      ReplayInfo replay = qmp.queryReplay();
      assertThat(replay.mode()).isEqualTo("none");
      assertThat(replay.filename()).isNull();

      assertThatThrownBy(() -> qmp.client().execute("no-such-command", null, T))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining(qemu.qmpSocket().toString())
          .hasMessageContaining("'no-such-command'")
          .satisfies(e -> assertThat(((QmpErrorException) e).errorClass()).isEqualTo("CommandNotFound"));
      assertThatThrownBy(() -> qmp.replayBreak(1_000_000))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("only in play mode");
      assertThatThrownBy(() -> qmp.hmp("no-such-hmp-command"))
          .isExactlyInstanceOf(QmpErrorException.class)
          .satisfies(e -> assertThat(((QmpErrorException) e).errorClass()).isEqualTo("CommandNotFound"));
      assertThat(qmp.queryStatus().running()).isTrue();

      qmp.quit();
      assertThat(qemu.awaitExit(T)).contains(0);
      await(events, "SHUTDOWN");
    }
  }

  /**
   * A frozen QEMU (SIGSTOP) makes a call time out and leaves the connection open; QEMU killed in the
   * middle of a call fails that call at once with the socket and the command named.
   */
  @Test
  void qemuFrozenThenKilledInTheMiddleOfACall() throws Exception {
    ExecutorService caller = Executors.newSingleThreadExecutor();
    try (QemuProcess qemu = boot(QemuLaunch.of(Guest.spec(""), tmp.resolve("run"), "qft-qmp-kill"));
        QmpClient qmp = QmpClient.connect(qemu.qmpSocket(), T)) {
      qemu.awaitSerial(READY, BOOT);
      qemu.signal("STOP");
      assertThatThrownBy(() -> qmp.execute("query-status", null, Duration.ofSeconds(1)))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("did not reply to 'query-status' within 1000 ms");
      assertThat(qmp.isOpen()).isTrue();

      Future<?> call = caller.submit(() -> qmp.execute("query-replay", null, Duration.ofMinutes(5)));
      Thread.sleep(500); // let the request reach the frozen QEMU's socket
      assertThat(call.isDone()).isFalse();
      qemu.kill();
      assertThatThrownBy(() -> call.get(T.toSeconds(), TimeUnit.SECONDS))
          .cause()
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("no reply to 'query-replay'")
          .hasMessageContaining(qemu.qmpSocket().toString())
          .hasMessageContaining("did QEMU exit, or was it killed?");
      assertThat(qmp.isOpen()).isFalse();
    } finally {
      caller.shutdownNow();
    }
  }

  @Test
  void snapshotsSaveLoadAndDeleteInASnapshotStore() throws Exception {
    Path store = tmp.resolve("snapshots.qcow2");
    Process img = new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", store.toString(), "1G")
        .redirectErrorStream(true).start();
    assertThat(img.waitFor()).as(new String(img.getInputStream().readAllBytes())).isZero();
    QemuLaunch launch = QemuLaunch.of(Guest.spec(""), tmp.resolve("run"), "qft-qmp-snap").snapshotStore(store);
    try (QemuProcess qemu = boot(launch); QemuMonitor qmp = QemuMonitor.connect(qemu.qmpSocket(), T)) {
      qemu.awaitSerial(READY, BOOT);
      BlockInfo block = qmp.queryBlock().stream().filter(b -> b.device().equals("snapstore")).findFirst().orElseThrow();
      assertThat(block.driver()).isEqualTo("qcow2");
      assertThat(block.file()).isEqualTo(store.toString());
      String node = block.nodeName();
      assertThat(node).isNotBlank();

      // Saved while stopped at icount A; the guest runs on; loading brings it back to A.
      qmp.stop();
      long saved = qmp.queryReplay().icount();
      qmp.snapshotSave("t1", node, List.of(node), T);
      assertThat(qmp.hmp("info snapshots")).contains(" t1 ");
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("paused", false));
      qmp.cont();
      long later = saved;
      for (int i = 0; i < 600 && later <= saved; i++) {
        Thread.sleep(100);
        later = qmp.queryReplay().icount();
      }
      assertThat(later).isGreaterThan(saved);
      qmp.stop();
      qmp.snapshotLoad("t1", node, List.of(node), T);
      assertThat(qmp.queryReplay().icount()).isEqualTo(saved);
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("paused", false));
      qmp.cont();
      assertThat(qmp.queryStatus().running()).isTrue();

      qmp.snapshotDelete("t1", List.of(node), T);
      assertThat(qmp.hmp("info snapshots")).doesNotContain(" t1 ");

      // QEMU names the nodes, not the drive ids.
      assertThatThrownBy(() -> qmp.snapshotSave("t2", "snapstore", List.of("snapstore"), T))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("No block device node 'snapstore'");
      // A failed load leaves the VM stopped, even though it ran.
      assertThatThrownBy(() -> qmp.snapshotLoad("nope", node, List.of(node), T))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("refused 'snapshot-load'")
          .hasMessageContaining("Snapshot 'nope' does not exist");
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("restore-vm", false));
      assertThat(qmp.client().execute("query-jobs", null, T)).isEmpty();

      // The same through HMP, whose errors are text.
      assertThat(qmp.hmp("savevm h1", T)).isEmpty();
      assertThat(qmp.hmp("info snapshots")).contains(" h1 ");
      assertThat(qmp.hmp("loadvm h1", T)).isEmpty();
      assertThat(qmp.hmp("delvm h1", T)).isEmpty();
      assertThatThrownBy(() -> qmp.hmp("loadvm h1", T))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("HMP 'loadvm h1' printed an error")
          .hasMessageContaining("Error: Snapshot 'h1' does not exist");
    }
    assertThat(Files.size(store)).isGreaterThan(0);
  }

  @Test
  void queryReplayInRecordMode() throws Exception {
    Path log = tmp.resolve("replay.bin");
    QemuLaunch launch = QemuLaunch.of(Guest.spec(""), tmp.resolve("run"), "qft-qmp-rec").mode(Mode.RECORD, log);
    try (QemuProcess qemu = boot(launch); QemuMonitor qmp = QemuMonitor.connect(qemu.qmpSocket(), T)) {
      qemu.awaitSerial(READY, BOOT);
      ReplayInfo first = qmp.queryReplay();
      assertThat(first.mode()).isEqualTo("record");
      assertThat(first.filename()).isEqualTo(log.toString());
      assertThat(first.icount()).isPositive();
      long later = first.icount();
      for (int i = 0; i < 600 && later <= first.icount(); i++) {
        Thread.sleep(100);
        later = qmp.queryReplay().icount();
      }
      assertThat(later).isGreaterThan(first.icount());
      long ahead = later + 1_000_000;
      assertThatThrownBy(() -> qmp.replayBreak(ahead))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("setting the breakpoint is allowed only in play mode");
      qmp.quit();
      assertThat(qemu.awaitExit(T)).contains(0);
    }
  }

  /** replay-break stops a replaying VM at exactly the instruction asked for. */
  @Test
  void replayBreakStopsAReplayAtTheIcount() throws Exception {
    Path log = tmp.resolve("replay.bin");
    long recorded;
    try (QemuProcess rec = boot(QemuLaunch.of(Guest.spec(""), tmp.resolve("rec"), "qft-qmp-rec")
            .mode(Mode.RECORD, log));
        QemuMonitor qmp = QemuMonitor.connect(rec.qmpSocket(), T)) {
      rec.awaitSerial(READY, BOOT);
      qmp.stop();
      recorded = qmp.queryReplay().icount();
      qmp.quit();
      assertThat(rec.awaitExit(T)).contains(0);
    }
    long target = recorded / 2;
    try (QemuProcess rep = boot(QemuLaunch.of(Guest.spec(""), tmp.resolve("rep"), "qft-qmp-rep")
            .mode(Mode.REPLAY, log).extraArgs("-S"));
        QemuMonitor qmp = QemuMonitor.connect(rep.qmpSocket(), T)) {
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("prelaunch", false));
      assertThat(qmp.queryReplay().mode()).isEqualTo("play");
      BlockingQueue<QmpEvent> events = new LinkedBlockingQueue<>();
      qmp.client().onEvent("STOP", events::add);
      qmp.replayBreak(target);
      qmp.cont();
      await(events, "STOP");
      assertThat(qmp.queryStatus()).isEqualTo(new VmStatus("paused", false));
      assertThat(qmp.queryReplay().icount()).isEqualTo(target);
      assertThatThrownBy(() -> qmp.replayBreak(target - 1))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining("in the past");
    }
  }
}
