package org.qemuft.nativeio;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * libftshim driven from outside, in another process, with the stdio calls QEMU 7.2's replay/
 * code makes (ftshim-drive, built from native/src/test/c), against rings this JVM maps: the
 * stream's offsets, the header it absorbs and makes up, blocking, end of stream and the failures.
 */
@Timeout(120)
class ShimStreamTest {
  private static final Duration LONG = Duration.ofSeconds(60);
  private static final String LOG = "/qemuft-test/replay.bin"; // never created: intercepted

  private Path dir;
  private Path ring;

  @BeforeEach
  void setUp() throws IOException {
    dir = LogRingTest.RingFiles.tempDir();
    ring = dir.resolve("qemuft-ring");
  }

  @AfterEach
  void tearDown() throws IOException {
    LogRingTest.RingFiles.delete(dir);
  }

  record Run(int exit, List<String> out, String err) {}

  static Path shim() {
    String p = System.getProperty("qemuft.shim");
    if (p == null) {
      throw new IllegalStateException("system property qemuft.shim is not set (run through Maven)");
    }
    return Path.of(p);
  }

  private Process start(String... ops) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(shim().resolveSibling("ftshim-drive").toString());
    cmd.addAll(List.of(ops));
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.environment().put("LD_PRELOAD", shim().toString());
    pb.environment().put("QEMUFT_SHIM_LOG", LOG);
    pb.environment().put("QEMUFT_SHIM_RING", ring.toString());
    return pb.start();
  }

  private static Run finish(Process p) throws Exception {
    try {
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      Thread t = Thread.ofPlatform().start(() -> {
        try {
          p.getErrorStream().transferTo(err);
        } catch (IOException ignored) {
          // the process is gone
        }
      });
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        throw new AssertionError("ftshim-drive did not finish");
      }
      t.join();
      return new Run(p.exitValue(), out.lines().toList(), err.toString(StandardCharsets.UTF_8));
    } finally {
      p.destroyForcibly();
    }
  }

  private Run run(String... ops) throws Exception {
    return finish(start(ops));
  }

  private static String hex(byte[] b) {
    return HexFormat.of().formatHex(b);
  }

  @Test
  void recordingKeepsFileOffsetsAndPutsOnlyEventsInTheRing() throws Exception {
    try (LogRing r = LogRing.create(ring, 4096)) {
      // replay_enable, two events, a savevm's ftell, and replay_finish's header at offset 0.
      Run run = run("open", LOG, "wb", "seek", "12", "tell", "put", "0000000005", "write",
          "1e1f", "tell", "seek", "0", "put", "00e0200c", "tell", "close");
      assertThat(run.exit()).as(run.err()).isZero();
      assertThat(run.out()).containsExactly("open ok", "seek 12 0", "tell 12", "put 5", "write 2",
          "tell 19", "seek 0 0", "put 4", "tell 4", "close 0");
      assertThat(run.err()).contains("libftshim: QEMU's replay log " + LOG + " is ring " + ring);
      assertThat(Files.exists(Path.of(LOG))).isFalse();
      assertThat(r.writePosition()).isEqualTo(7);
      assertThat(r.writerClosed()).isTrue();
      byte[] b = new byte[16];
      assertThat(r.read(b, 0, 16)).isEqualTo(7);
      assertThat(hex(java.util.Arrays.copyOf(b, 7))).isEqualTo("00000000051e1f");
      assertThat(r.read(b, 0, 16)).isEqualTo(-1);
    }
  }

  @Test
  void replayingReadsAMadeUpHeaderThenTheRingAndSeeksLikeAFile() throws Exception {
    try (LogRing w = LogRing.create(ring, 4096)) {
      byte[] events = HexFormat.of().parseHex("0000000005" + "1e" + "1f" + "0000000007" + "27");
      w.write(events, 0, events.length, Duration.ZERO);
      w.closeWriter();
      // replay_enable: version, seek to 12, the first event kind; a snapshot load seeking back
      // to 12 re-reads it; a forward seek skips; at the end the writer has closed: EOF.
      Run run = run("open", LOG, "rb", "get", "4", "seek", "12", "get", "5", "tell", "seek", "12",
          "read", "7", "tell", "seek", "17", "get", "1", "seek", "19", "get", "5", "tell", "flags",
          "get", "1", "flags", "close");
      assertThat(run.exit()).as(run.err()).isZero();
      assertThat(run.out()).containsExactly("open ok", "get 00e0200c", "seek 12 0", "get 0000000005",
          "tell 17", "seek 12 0", "read 00000000051e1f", "tell 19", "seek 17 0", "get 1e",
          "seek 19 0", "get 0000000007", "tell 24", "flags 0 0", "get 27", "flags 0 0", "close 0");
      assertThat(w.readPosition()).isEqualTo(events.length);
      assertThat(w.readerClosed()).isTrue();
    }
  }

  @Test
  void theEndOfAClosedStreamIsEndOfFileWithOneLineNamingTheOffset() throws Exception {
    try (LogRing w = LogRing.create(ring, 4096)) {
      w.write(new byte[] {1, 2, 3}, 0, 3, Duration.ZERO);
      w.closeWriter();
      Run run = run("open", LOG, "rb", "seek", "12", "get", "5", "flags", "get", "1", "flags");
      assertThat(run.out()).containsExactly("open ok", "seek 12 0", "get 010203 eof", "flags 1 0",
          "get  eof", "flags 1 0");
      assertThat(run.err().lines().filter(l -> l.contains("end of file")).toList())
          .containsExactly("libftshim: ring " + ring + ": the controller closed the stream at "
              + "replay-log offset 15; QEMU reading " + LOG + " gets end of file");
    }
  }

  @Test
  void aReplayingReaderWaitsForBytesThatAreNotThereYet() throws Exception {
    try (LogRing w = LogRing.create(ring, 4096)) {
      Process p = start("open", LOG, "rb", "seek", "12", "get", "3", "tell");
      Thread.sleep(500);
      assertThat(p.isAlive()).as("the reader must wait, not see end of file").isTrue();
      w.write(new byte[] {7}, 0, 1, Duration.ZERO);
      Thread.sleep(200);
      assertThat(p.isAlive()).isTrue();
      w.write(new byte[] {8, 9}, 0, 2, Duration.ZERO);
      Run run = finish(p);
      assertThat(run.out()).containsExactly("open ok", "seek 12 0", "get 070809", "tell 15");
    }
  }

  @Test
  void aHeldRingStopsARecordingAtItsNextByteUntilReleased() throws Exception {
    try (LogRing r = LogRing.create(ring, 4096)) {
      r.holdWriter(true);
      assertThat(r.writerHeld()).isTrue();
      // The ring has room, but a held writer waits: the one-byte path and fwrite alike.
      Process p = start("open", LOG, "wb", "seek", "12", "put", "01", "write", "0203", "tell");
      Thread.sleep(500);
      assertThat(p.isAlive()).as("a held writer must wait").isTrue();
      assertThat(r.writePosition()).isZero();
      r.holdWriter(false);
      Run run = finish(p);
      assertThat(run.exit()).as(run.err()).isZero();
      assertThat(run.out()).containsExactly("open ok", "seek 12 0", "put 1", "write 2", "tell 15");
      byte[] b = new byte[16];
      assertThat(r.read(b, 0, 16)).isEqualTo(3);
      assertThat(hex(java.util.Arrays.copyOf(b, 3))).isEqualTo("010203");
    }
  }

  /** Many laps of a small ring between processes, both ways, with both sides blocking. */
  @Test
  void bulkStreamsPassThroughASmallRingBothWays() throws Exception {
    int total = 8 << 20;
    try (LogRing r = LogRing.create(ring, 4096)) {
      Process p = start("open", LOG, "wb", "seek", "12", "pattern-write", Integer.toString(total),
          "close");
      byte[] buf = new byte[3000];
      long pos = 0;
      while (true) {
        assertThat(r.awaitReadable(LONG)).isTrue();
        int n = r.read(buf, 0, buf.length);
        if (n < 0) {
          break;
        }
        for (int i = 0; i < n; i++) {
          if (buf[i] != LogRingTest.pattern(pos + i)) {
            throw new AssertionError("byte " + (pos + i) + " is " + buf[i]);
          }
        }
        pos += n;
      }
      Run run = finish(p);
      assertThat(run.exit()).as(run.err()).isZero();
      assertThat(pos).isEqualTo(total);
    }
    Files.delete(ring);
    try (LogRing w = LogRing.create(ring, 4096)) {
      Process p = start("open", LOG, "rb", "seek", "12", "pattern-read", Integer.toString(total),
          "close");
      byte[] buf = new byte[5000];
      long pos = 0;
      while (pos < total) {
        int n = (int) Math.min(buf.length, total - pos);
        for (int i = 0; i < n; i++) {
          buf[i] = LogRingTest.pattern(pos + i);
        }
        int done = 0;
        while (done < n) {
          done += w.write(buf, done, n - done, LONG);
        }
        pos += n;
      }
      Run run = finish(p);
      assertThat(run.out()).contains("pattern-read " + total + " ok");
      assertThat(w.readPosition()).isEqualTo(total);
    }
  }

  @Test
  void otherFilesAreNotIntercepted() throws Exception {
    try (LogRing r = LogRing.create(ring, 4096)) {
      Path plain = dir.resolve("plain.bin");
      Run run = run("open", plain.toString(), "wb", "put", "4142", "close");
      assertThat(run.exit()).isZero();
      assertThat(Files.readString(plain)).isEqualTo("AB");
      assertThat(r.writePosition()).isZero();
      assertThat(run.err()).doesNotContain("libftshim");
    }
  }

  @Test
  void aRingOfAnotherReplayVersionStopsTheProcessWithOneLine() throws Exception {
    LogRing.create(ring, 4096).close();
    LogRingTest.patchInt(ring, LogRing.OFF_REPLAY_VERSION, 0x00e0200d);
    Run run = run("open", LOG, "rb", "get", "4");
    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.out()).isEmpty();
    assertThat(run.err().strip()).startsWith("libftshim: ring " + ring)
        .contains("replay log version 0x00e0200d").contains("0x00e0200c")
        .doesNotContain("\n");
  }

  @Test
  void aMissingOrForeignRingStopsTheProcessWithOneLine() throws Exception {
    Run missing = run("open", LOG, "wb");
    assertThat(missing.exit()).isEqualTo(1);
    assertThat(missing.err().strip()).startsWith("libftshim: ring " + ring + ": cannot open")
        .contains("No such file");
    Files.write(ring, new byte[LogRing.HEADER_SIZE + 4096]);
    Run foreign = run("open", LOG, "wb");
    assertThat(foreign.exit()).isEqualTo(1);
    assertThat(foreign.err()).contains("not a qemu-ft ring");
  }

  @Test
  void aRingThatAlreadyHasAWriterIsRefused() throws Exception {
    try (LogRing w = LogRing.create(ring, 4096)) {
      w.write(new byte[] {1}, 0, 1, Duration.ZERO); // this JVM is the writer now
      Run run = run("open", LOG, "wb");
      assertThat(run.exit()).isEqualTo(1);
      assertThat(run.err()).contains("ring " + ring + " already has a writer (pid "
          + ProcessHandle.current().pid() + ")");
    }
  }

  @Test
  void aRecordingQemuCannotRewriteShippedBytes() throws Exception {
    try (LogRing r = LogRing.create(ring, 4096)) {
      Run run = run("open", LOG, "wb", "seek", "12", "put", "0102", "seek", "13", "put", "09",
          "seek", "40", "close");
      assertThat(run.out()).containsExactly("open ok", "seek 12 0", "put 2", "seek 13 0", "put 0",
          "seek 40 -1", "close 0");
      assertThat(run.err()).contains("cannot be rewritten").contains("outside the stream");
      assertThat(r.writePosition()).isEqualTo(2);
    }
  }
}
