package org.qemuft.controller.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.replaylog.ReplayLogEncoder;

class RrScanCommandTest {
  @TempDir Path dir;

  record Run(int exit, String out, String err) {
    JsonNode json() throws Exception {
      return new ObjectMapper().readTree(out);
    }
  }

  private static Run ftctl(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    var cl = Ftctl.commandLine();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int exit = cl.execute(args);
    return new Run(exit, out.toString(), err.toString());
  }

  private static Run ftctlWithStdin(byte[] stdin, String... args) {
    InputStream saved = System.in;
    System.setIn(new ByteArrayInputStream(stdin));
    try {
      return ftctl(args);
    } finally {
      System.setIn(saved);
    }
  }

  /** Header, INSTRUCTION 1000, CHECKPOINT_CLOCK_WARP_ACCOUNT, INSTRUCTION 500, SHUTDOWN, END. */
  private static byte[] smallLog() {
    return ByteBuffer.allocate(12 + 5 + 1 + 5 + 1 + 1)
        .put(ReplayLogEncoder.fileHeader())
        .put(ReplayLogEncoder.instruction(1000))
        .put((byte) 31)
        .put(ReplayLogEncoder.instruction(500))
        .put((byte) 14)
        .put((byte) 39)
        .array();
  }

  private Path write(String name, byte[] data) throws Exception {
    Path p = dir.resolve(name);
    Files.write(p, data);
    return p;
  }

  @Test
  void summarisesARealQemuLog() throws Exception {
    byte[] log;
    try (InputStream in = new GZIPInputStream(
        RrScanCommandTest.class.getResourceAsStream("seabios-qmp-quit.bin.gz"))) {
      log = in.readAllBytes();
    }
    Run r = ftctl("rr-scan", write("real.bin", log).toString());
    assertThat(r.exit()).as(r.err()).isZero();
    JsonNode j = r.json();
    assertThat(j.get("version").asText()).isEqualTo("0x00e0200c");
    // The QEMU that wrote it reported icount 13348954 through query-replay after 'stop'.
    assertThat(j.get("icount").asLong()).isEqualTo(13_348_954L);
    assertThat(j.get("complete").asBoolean()).isTrue();
    assertThat(j.get("ended").asBoolean()).isTrue();
    assertThat(j.get("bytes").asLong()).isEqualTo(log.length);
    assertThat(j.get("byKind").get("END").asLong()).isEqualTo(1);
    assertThat(j.get("byKind").get("SHUTDOWN_HOST_QMP_QUIT").asLong()).isEqualTo(1);
    long sum = 0;
    for (JsonNode n : j.get("byKind")) {
      sum += n.asLong();
    }
    assertThat(sum).isEqualTo(j.get("events").asLong());
  }

  @Test
  void printsExactlyTheDocumentedFields() throws Exception {
    Run r = ftctl("rr-scan", write("small.bin", smallLog()).toString());
    assertThat(r.exit()).isZero();
    assertThat(r.err()).isEmpty();
    assertThat(r.out().strip()).isEqualTo(
        "{\"version\":\"0x00e0200c\",\"events\":5,\"icount\":1500,\"complete\":true,"
            + "\"ended\":true,\"bytes\":25,\"lastEventEnd\":25,\"byKind\":{\"INSTRUCTION\":2,"
            + "\"SHUTDOWN_HOST_SIGNAL\":1,\"CHECKPOINT_CLOCK_WARP_ACCOUNT\":1,\"END\":1}}");
  }

  @Test
  void aCutLogIsValidButIncomplete() throws Exception {
    byte[] cut = Arrays.copyOf(smallLog(), 20); // inside the second INSTRUCTION
    Run r = ftctl("rr-scan", write("cut.bin", cut).toString());
    assertThat(r.exit()).isZero();
    JsonNode j = r.json();
    assertThat(j.get("complete").asBoolean()).isFalse();
    assertThat(j.get("ended").asBoolean()).isFalse();
    assertThat(j.get("events").asLong()).isEqualTo(2);
    assertThat(j.get("icount").asLong()).isEqualTo(1000);
    assertThat(j.get("lastEventEnd").asLong()).isEqualTo(18);
  }

  @Test
  void readsAHeaderlessStreamFromStdin() throws Exception {
    byte[] log = smallLog();
    byte[] stream = ByteBuffer.allocate(log.length - 12 + 4)
        .put(log, 12, log.length - 12).putInt(0x00e0200c).array(); // as QEMU writes into a pipe
    Run r = ftctlWithStdin(stream, "rr-scan", "--headerless", "-");
    assertThat(r.exit()).as(r.err()).isZero();
    JsonNode j = r.json();
    assertThat(j.get("version").isNull()).isTrue();
    assertThat(j.get("events").asLong()).isEqualTo(5);
    assertThat(j.get("complete").asBoolean()).isTrue();
    assertThat(j.get("lastEventEnd").asLong()).isEqualTo(log.length - 12);
  }

  @Test
  void anotherVersionIsRefusedNamingTheFileOffsetAndVersions() throws Exception {
    byte[] log = smallLog();
    log[2] = 0x1f;
    Path p = write("other.bin", log);
    Run r = ftctl("rr-scan", p.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.out()).isEmpty();
    assertThat(r.err()).contains(p.toString()).contains("offset 0")
        .contains("0x00e01f0c").contains("0x00e0200c");
  }

  @Test
  void aCorruptEventIsRefusedNamingTheFileAndOffset() throws Exception {
    byte[] log = smallLog();
    log[18] = 0x55; // the kind byte of the second INSTRUCTION
    Path p = write("corrupt.bin", log);
    Run r = ftctl("rr-scan", p.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).contains(p.toString())
        .contains("unknown event kind 0x55 (85) at offset 18")
        .contains("2 whole events (icount 1000), the last ending at offset 18");
  }

  @Test
  void anUnwrittenHeaderIsRefusedWithAHintAndAcceptedOnRequest() throws Exception {
    byte[] log = smallLog();
    Arrays.fill(log, 0, 4, (byte) 0);
    Path p = write("recording.bin", Arrays.copyOf(log, 24)); // no END yet
    Run refused = ftctl("rr-scan", p.toString());
    assertThat(refused.exit()).isEqualTo(1);
    assertThat(refused.err()).contains("still being recorded").contains("--unfinished " + p);
    Run accepted = ftctl("rr-scan", "--unfinished", p.toString());
    assertThat(accepted.exit()).as(accepted.err()).isZero();
    assertThat(accepted.json().get("version").asText()).isEqualTo("0x00000000");
    assertThat(accepted.json().get("events").asLong()).isEqualTo(4);
    assertThat(accepted.json().get("ended").asBoolean()).isFalse();
    assertThat(accepted.json().get("complete").asBoolean()).isTrue();
  }

  @Test
  void anUnreadableFileExitsWith2() throws Exception {
    Run missing = ftctl("rr-scan", dir.resolve("nope.bin").toString());
    assertThat(missing.exit()).isEqualTo(2);
    assertThat(missing.err()).contains("cannot read " + dir.resolve("nope.bin")).contains("no such file");
    Run directory = ftctl("rr-scan", dir.toString());
    assertThat(directory.exit()).isEqualTo(2);
    assertThat(directory.err()).contains("directory");
  }

  @Test
  void badUsageExitsWith64() {
    assertThat(ftctl("rr-scan").exit()).isEqualTo(64);
    assertThat(ftctl("rr-scan", "--headerless", "--unfinished", "x").exit()).isEqualTo(64);
  }

  @Test
  void helpExplainsTheOutputAndTheExitCodes() {
    Run r = ftctl("rr-scan", "--help");
    assertThat(r.exit()).isZero();
    assertThat(r.out().replaceAll("\\s+", " "))
        .contains("A log QEMU finished writes END last")
        .contains("--headerless").contains("--unfinished")
        .contains("query-replay")
        .contains("Exit codes:").contains("FILE cannot be read");
    assertThat(ftctl("help").out()).contains("rr-scan");
  }
}
