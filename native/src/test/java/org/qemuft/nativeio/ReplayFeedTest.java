package org.qemuft.nativeio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.SplittableRandom;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogEncoder;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;

@Timeout(120)
class ReplayFeedTest {
  private static final Duration SHORT = Duration.ofSeconds(10);

  private Path dir;
  private Path ringFile;

  @BeforeEach
  void setUp() throws IOException {
    dir = LogRingTest.RingFiles.tempDir();
    ringFile = dir.resolve("qemuft-feed");
  }

  @AfterEach
  void tearDown() throws IOException {
    LogRingTest.RingFiles.delete(dir);
  }

  /** The events of a real recording (QEMU 7.2, SeaBIOS, ended by QMP quit): file minus header. */
  static byte[] realStream() throws IOException {
    try (InputStream in = ReplayFeedTest.class.getResourceAsStream(
        "/org/qemuft/replaylog/seabios-qmp-quit.bin.gz")) {
      byte[] file = new GZIPInputStream(in).readAllBytes();
      return Arrays.copyOfRange(file, ReplayLogScanner.FILE_HEADER_SIZE, file.length);
    }
  }

  private static byte[] drainRing(LogRing r) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] b = new byte[65536];
    int n;
    while ((n = r.read(b, 0, b.length)) > 0) {
      out.write(b, 0, n);
    }
    return out.toByteArray();
  }

  @Test
  void onlyWholeEventsReachTheRingHoweverTheStreamIsCut() throws Exception {
    byte[] stream = realStream();
    ReplayLogScanner ref = ReplayLogScanner.forStream((k, a, b, i) -> { }, 12, 0);
    ref.feed(stream, 0, stream.length);
    try (LogRing w = LogRing.create(ringFile, 1 << 20); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w);
      // What the ring delivers, checked as it arrives: always whole events, always the stream.
      ReplayLogScanner delivered = ReplayLogScanner.forStream((k, a, b, i) -> { }, 12, 0);
      SplittableRandom rnd = new SplittableRandom(7);
      int p = 0;
      int seen = 0;
      boolean sawPartial = false;
      while (p < stream.length) {
        int n = Math.min(stream.length - p, 1 + rnd.nextInt(23));
        assertThat(feed.feed(stream, p, n, SHORT)).isTrue();
        p += n;
        byte[] chunk = drainRing(r);
        assertThat(chunk).isEqualTo(Arrays.copyOfRange(stream, seen, seen + chunk.length));
        seen += chunk.length;
        delivered.feed(chunk, 0, chunk.length);
        assertThat(delivered.atEventBoundary()).as("ring content after %d bytes", p).isTrue();
        assertThat(feed.ringEnd()).isEqualTo(12 + seen);
        assertThat(feed.pendingBytes()).isEqualTo(feed.partialBytes()).isEqualTo(p - seen);
        sawPartial |= feed.partialBytes() > 0;
      }
      assertThat(sawPartial).isTrue();
      assertThat(seen).isEqualTo(stream.length);
      assertThat(feed.ended()).isTrue();
      assertThat(feed.icount()).isEqualTo(ref.icount()).isEqualTo(13_348_954L);
      assertThat(feed.events()).isEqualTo(ref.events());
      assertThat(w.writerClosed()).isFalse();
    }
  }

  @Test
  void aFullRingKeepsWholeEventsWaitingUntilThereIsRoom() throws Exception {
    byte[] stream = Arrays.copyOf(realStream(), 20_000);
    try (LogRing w = LogRing.create(ringFile, 4096); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w);
      assertThat(feed.feed(stream, 0, stream.length, Duration.ZERO)).isFalse();
      assertThat(w.writePosition()).isBetween(4096L - 40, 4096L);
      assertThat(feed.pendingBytes()).isEqualTo(stream.length - w.writePosition());
      ByteArrayOutputStream got = new ByteArrayOutputStream();
      while (!feed.flush(Duration.ZERO) || r.readable() > 0) {
        got.write(drainRing(r));
      }
      got.write(drainRing(r));
      assertThat(feed.pendingBytes()).isEqualTo(feed.partialBytes());
      assertThat(got.toByteArray()).isEqualTo(Arrays.copyOf(stream, got.size()));
      assertThat(12 + got.size()).isEqualTo(feed.safeEnd());
    }
  }

  @Test
  void corruptInputIsRefusedAfterDeliveringTheGoodEventsAndEndsTheStream() throws Exception {
    byte[] good = HexFormat.of().parseHex("0000000064" + "1f" + "00000000c8" + "1e");
    byte[] bad = HexFormat.of().parseHex("00000001" + "15" + "1e1e"); // finishes a count, then 21
    try (LogRing w = LogRing.create(ringFile, 4096); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w);
      assertThat(feed.feed(good, 0, good.length, SHORT)).isTrue();
      byte[] partialInstruction = HexFormat.of().parseHex("00");
      feed.feed(partialInstruction, 0, 1, SHORT);
      assertThatThrownBy(() -> feed.feed(bad, 0, bad.length, SHORT))
          .isInstanceOf(ReplayLogException.class)
          .hasMessageContaining("offset " + (12 + good.length + 5));
      assertThat(drainRing(r)).isEqualTo(HexFormat.of().parseHex(
          "0000000064" + "1f" + "00000000c8" + "1e" + "0000000001"));
      assertThat(w.writerClosed()).isTrue();
      assertThat(r.read(new byte[1], 0, 1)).isEqualTo(-1);
      assertThatThrownBy(() -> feed.feed(good, 0, 1, SHORT))
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("corrupt input");
      assertThatThrownBy(() -> feed.goLive(ReplayFeed.GoLiveTail.DEFAULT, SHORT))
          .isInstanceOf(IllegalStateException.class);
    }
  }

  @Test
  void goLiveDropsThePartialEventAppendsTheTailAndLeavesTheRingOpen() throws Exception {
    byte[] events = HexFormat.of().parseHex("0000000064" + "1f" + "0000000032" + "1e");
    byte[] partial = HexFormat.of().parseHex("09" + "00" + "00000000"); // an ASYNC_NET in progress
    try (LogRing w = LogRing.create(ringFile, 4096); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w, 1000);
      feed.feed(events, 0, events.length, SHORT);
      feed.feed(partial, 0, partial.length, SHORT);
      assertThat(feed.partialBytes()).isEqualTo(partial.length);
      ReplayFeed.GoLiveTail tail = new ReplayFeed.GoLiveTail(
          ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 3);
      long icount = feed.goLive(tail, SHORT);
      assertThat(icount).isEqualTo(1000 + 100 + 50);
      ByteArrayOutputStream expected = new ByteArrayOutputStream();
      expected.write(events);
      expected.write(ReplayLogEncoder.goLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 3));
      assertThat(drainRing(r)).isEqualTo(expected.toByteArray());
      assertThat(w.writerClosed()).isFalse();
      assertThat(feed.pendingBytes()).isZero();
      assertThatThrownBy(() -> feed.feed(events, 0, 1, SHORT))
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("gone live");
    }
  }

  @Test
  void goLiveAfterTheEndOfTheStreamIsRefused() throws Exception {
    byte[] stream = realStream();
    try (LogRing w = LogRing.create(ringFile, 1 << 20)) {
      ReplayFeed feed = new ReplayFeed(w);
      feed.feed(stream, 0, stream.length, SHORT);
      assertThatThrownBy(() -> feed.goLive(ReplayFeed.GoLiveTail.DEFAULT, SHORT))
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("has ended (END");
    }
  }

  @Test
  void goLiveFailsLoudlyWhenTheBackupDoesNotReadItsLog() throws Exception {
    byte[] stream = Arrays.copyOf(realStream(), 4000);
    try (LogRing w = LogRing.create(ringFile, 4096)) {
      ReplayFeed feed = new ReplayFeed(w);
      feed.feed(stream, 0, stream.length, SHORT);
      assertThatThrownBy(() -> feed.goLive(ReplayFeed.GoLiveTail.DEFAULT, Duration.ofMillis(200)))
          .isInstanceOf(IOException.class).hasMessageContaining("is not reading its log");
    }
  }

  @Test
  void aTailWithoutAShutdownIsRefused() {
    assertThatThrownBy(() -> new ReplayFeed.GoLiveTail(ReplayEventKind.INSTRUCTION, 1, 1))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> new ReplayFeed.GoLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 0, 1))
        .isInstanceOf(IllegalArgumentException.class);
  }
}
