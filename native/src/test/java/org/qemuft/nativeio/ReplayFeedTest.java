package org.qemuft.nativeio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
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
  private static final int WARP_START = ReplayEventKind.CHECKPOINT_CLOCK_WARP_START.code();
  private static final int WARP_ACCOUNT = ReplayEventKind.CHECKPOINT_CLOCK_WARP_ACCOUNT.code();

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

  /** The events of a real recording in the test resources, file header removed. */
  static byte[] stream(String name) throws IOException {
    try (InputStream in = ReplayFeedTest.class.getResourceAsStream("/org/qemuft/replaylog/" + name)) {
      byte[] file = new GZIPInputStream(in).readAllBytes();
      return Arrays.copyOfRange(file, ReplayLogScanner.FILE_HEADER_SIZE, file.length);
    }
  }

  /** One whole event of a stream that starts at log offset 12 with icount 0. */
  record Ev(int kind, long start, long end, long icount) {}

  static List<Ev> events(byte[] stream) throws IOException {
    List<Ev> evs = new ArrayList<>();
    ReplayLogScanner.forStream((k, a, b, i) -> evs.add(new Ev(k, a, b, i)), 12, 0)
        .feed(stream, 0, stream.length);
    return evs;
  }

  /**
   * Where a backup may be cut once events 0..i are whole, by the definition in docs/go-live.md
   * (written out here independently of GoLiveBoundary): the end of event i, unless a WARP_START
   * came after the last WARP_ACCOUNT: then the start of the first such WARP_START. {end, icount}.
   */
  static long[][] boundaries(List<Ev> evs) {
    long[][] b = new long[evs.size()][];
    int open = -1;
    for (int i = 0; i < evs.size(); i++) {
      Ev e = evs.get(i);
      if (e.kind() == WARP_START && open < 0) {
        open = i;
      } else if (e.kind() == WARP_ACCOUNT) {
        open = -1;
      }
      b[i] = open < 0 ? new long[] {e.end(), e.icount()}
          : new long[] {evs.get(open).start(), evs.get(open).icount()};
    }
    return b;
  }

  /** Number of events whole in the first {@code bytes} bytes of the stream. */
  static int wholeIn(List<Ev> evs, long bytes) {
    int lo = 0;
    int hi = evs.size();
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (evs.get(mid).end() <= 12 + bytes) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  /** Runs of events (first index, last index) inside idle warps, with at least {@code min} events. */
  static List<int[]> openWarps(List<Ev> evs, int min) {
    List<int[]> runs = new ArrayList<>();
    int open = -1;
    for (int i = 0; i < evs.size(); i++) {
      int k = evs.get(i).kind();
      if (k == WARP_START && open < 0) {
        open = i;
      } else if (k == WARP_ACCOUNT && open >= 0) {
        if (i - open >= min) {
          runs.add(new int[] {open, i - 1});
        }
        open = -1;
      }
    }
    return runs;
  }

  @Test
  void onlyWholeEventsOutsideOpenIdleWarpsReachTheRingHoweverTheStreamIsCut() throws Exception {
    byte[] stream = realStream();
    List<Ev> evs = events(stream);
    long[][] bnd = boundaries(evs);
    try (LogRing w = LogRing.create(ringFile, 1 << 20); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w);
      // What the ring delivers, checked as it arrives: always whole events, always the stream.
      ReplayLogScanner delivered = ReplayLogScanner.forStream((k, a, b, i) -> { }, 12, 0);
      SplittableRandom rnd = new SplittableRandom(7);
      int p = 0;
      int seen = 0;
      boolean sawPartial = false;
      boolean sawHeldBack = false;
      while (p < stream.length) {
        int n = Math.min(stream.length - p, 1 + rnd.nextInt(23));
        assertThat(feed.feed(stream, p, n, SHORT)).isTrue();
        p += n;
        byte[] chunk = drainRing(r);
        assertThat(chunk).isEqualTo(Arrays.copyOfRange(stream, seen, seen + chunk.length));
        seen += chunk.length;
        delivered.feed(chunk, 0, chunk.length);
        assertThat(delivered.atEventBoundary()).as("ring content after %d bytes", p).isTrue();
        int whole = wholeIn(evs, p);
        long expected = whole == 0 ? 12
            : feed.ended() ? evs.get(whole - 1).end() : bnd[whole - 1][0];
        assertThat(feed.ringEnd()).as("ring end after %d bytes", p).isEqualTo(12 + seen).isEqualTo(expected);
        assertThat(feed.goLiveEnd()).isEqualTo(whole == 0 ? 12 : bnd[whole - 1][0]);
        assertThat(feed.pendingBytes()).isEqualTo(p - seen)
            .isEqualTo(feed.partialBytes() + feed.heldBackBytes());
        assertThat(feed.partialBytes()).isEqualTo(12 + p - feed.safeEnd());
        // QEMU has read all it was given: only an idle warp, if anything, is left.
        assertThat(feed.replayed()).isEqualTo(feed.safeEnd());
        sawPartial |= feed.partialBytes() > 0;
        sawHeldBack |= feed.heldBackBytes() > 0;
      }
      assertThat(sawPartial).isTrue();
      assertThat(sawHeldBack).as("the recording idles: warps were held back").isTrue();
      assertThat(seen).as("END released everything").isEqualTo(stream.length);
      assertThat(feed.ended()).isTrue();
      assertThat(feed.icount()).isEqualTo(evs.getLast().icount()).isEqualTo(13_348_954L);
      assertThat(feed.events()).isEqualTo(evs.size());
      assertThat(feed.guestPowerOff()).isEmpty();
      assertThat(w.writerClosed()).isFalse();
    }
  }

  /**
   * A long idle period of a Linux guest: while its warp is open nothing of it reaches the ring;
   * once QEMU has read everything before it the backup counts as caught up (its guest has
   * nothing to execute), and the warp's end releases it all.
   */
  @Test
  void anOpenIdleWarpWaitsForItsEndAndCountsAsReplayedOnceQemuHasReadWhatPrecedesIt() throws Exception {
    byte[] stream = stream("linux-boot-blkreplay.bin.gz");
    List<Ev> evs = events(stream);
    List<int[]> warps = openWarps(evs, 20);
    int[] warp = warps.get(warps.size() / 2);
    Ev first = evs.get(warp[0]);
    Ev inside = evs.get(warp[0] + 10);
    Ev last = evs.get(warp[1]);
    Ev account = evs.get(warp[1] + 1);
    assertThat(account.kind()).isEqualTo(WARP_ACCOUNT);
    try (LogRing w = LogRing.create(ringFile, 8 << 20); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w);
      int upTo = (int) (inside.end() - 12) + 3; // 3 bytes into the next event
      feed.feed(stream, 0, upTo, SHORT);
      assertThat(feed.ringEnd()).isEqualTo(first.start());
      assertThat(feed.goLiveEnd()).isEqualTo(first.start());
      assertThat(feed.goLiveIcount()).isEqualTo(first.icount()).isEqualTo(inside.icount());
      assertThat(feed.heldBackBytes()).isEqualTo(inside.end() - first.start());
      assertThat(feed.partialBytes()).isEqualTo(3);
      assertThat(feed.replayed()).as("QEMU has read nothing yet").isEqualTo(12);

      byte[] got = drainRing(r);
      assertThat(got).isEqualTo(Arrays.copyOf(stream, (int) (first.start() - 12)));
      assertThat(feed.replayed()).as("caught up: only the idle warp is left").isEqualTo(inside.end());

      feed.feed(stream, upTo, (int) (last.end() - 12) - upTo, SHORT);
      assertThat(feed.ringEnd()).as("still open").isEqualTo(first.start());
      assertThat(feed.replayed()).isEqualTo(last.end());

      feed.feed(stream, (int) (last.end() - 12), (int) (account.end() - last.end()), SHORT);
      assertThat(feed.ringEnd()).as("closed by WARP_ACCOUNT").isEqualTo(account.end());
      assertThat(feed.heldBackBytes()).isZero();
      assertThat(feed.replayed()).as("QEMU has not read the warp yet; never backwards").isEqualTo(last.end());
      assertThat(drainRing(r)).isEqualTo(
          Arrays.copyOfRange(stream, (int) (first.start() - 12), (int) (account.end() - 12)));
      assertThat(feed.replayed()).isEqualTo(account.end());
    }
  }

  /**
   * Going live anywhere in real recordings (SeaBIOS, and a Linux guest's boot and idle time):
   * the ring ends with the stream up to the boundary, exactly, then the tail; nothing of an open
   * warp or a partial event has ever been in it, and the icount returned is the boundary's.
   */
  @Test
  void goLiveCutsAtTheBoundaryWhereverThePrimaryStopped() throws Exception {
    for (String name : List.of("seabios-qmp-quit.bin.gz", "linux-boot-blkreplay.bin.gz",
        "linux-work-poweroff.bin.gz")) {
      byte[] stream = stream(name);
      List<Ev> evs = events(stream);
      long[][] bnd = boundaries(evs);
      List<int[]> warps = openWarps(evs, 2);
      SplittableRandom rnd = new SplittableRandom(name.hashCode());
      int inWarps = 0;
      for (int round = 0; round < 24; round++) {
        int cut;
        if (round % 2 == 0) {
          int[] warp = warps.get(rnd.nextInt(warps.size()));
          Ev e = evs.get(warp[0] + rnd.nextInt(warp[1] - warp[0] + 1));
          cut = (int) (e.start() - 12) + rnd.nextInt((int) (e.end() - e.start()) + 1);
        } else {
          cut = rnd.nextInt(stream.length - 1000);
        }
        int whole = wholeIn(evs, cut);
        long[] expected = whole == 0 ? new long[] {12, 0} : bnd[whole - 1];
        inWarps += whole > 0 && expected[0] < evs.get(whole - 1).end() ? 1 : 0;
        Files.deleteIfExists(ringFile);
        try (LogRing w = LogRing.create(ringFile, 16 << 20); LogRing r = LogRing.open(ringFile)) {
          ReplayFeed feed = new ReplayFeed(w);
          for (int p = 0; p < cut; ) {
            int n = Math.min(cut - p, 1 + rnd.nextInt(200_000));
            assertThat(feed.feed(stream, p, n, SHORT)).isTrue();
            p += n;
          }
          ReplayFeed.GoLiveTail tail = new ReplayFeed.GoLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 1000, 2);
          assertThat(feed.goLive(tail, SHORT)).as("%s cut at %d", name, cut).isEqualTo(expected[1]);
          ByteArrayOutputStream want = new ByteArrayOutputStream();
          want.write(stream, 0, (int) (expected[0] - 12));
          want.write(tail.bytes());
          assertThat(drainRing(r)).as("%s cut at %d", name, cut).isEqualTo(want.toByteArray());
          assertThat(feed.replayed()).as("the tail is the feed's, not the primary's").isEqualTo(expected[0]);
        }
      }
      assertThat(inWarps).as("cuts inside an open warp in " + name).isGreaterThan(6);
    }
  }

  /** linux-work-poweroff: the guest asked to power off here; its QEMU paused 13,094 instructions later. */
  private static final long POWER_OFF_ICOUNT = 1_975_259_161L;
  private static final long RECORDED_ICOUNT = 1_975_272_255L;

  private static Ev firstGuestPowerOff(List<Ev> evs) {
    return evs.stream().filter(e -> ReplayEventKind.of(e.kind()).isGuestPowerOff()).findFirst().orElseThrow();
  }

  /**
   * STOP_THERE on a real recording whose guest powered off by itself: the ring gets the stream up
   * to and including the guest's SHUTDOWN, then END, and nothing of the rest (the instructions the
   * recording ran until it paused, its own SHUTDOWNs and END), however the stream is cut.
   */
  @Test
  void stopThereFeedsUpToTheGuestsPowerOffThenEndAndNothingElse() throws Exception {
    byte[] stream = stream("linux-work-poweroff.bin.gz");
    List<Ev> evs = events(stream);
    Ev off = firstGuestPowerOff(evs);
    assertThat(off.kind()).isEqualTo(ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN.code());
    assertThat(off.icount()).isEqualTo(POWER_OFF_ICOUNT);
    assertThat(evs.getLast().icount()).isEqualTo(RECORDED_ICOUNT);
    byte[] expected = Arrays.copyOf(stream, (int) (off.end() - 12) + 1);
    expected[expected.length - 1] = (byte) ReplayEventKind.END.code();
    for (long seed = 1; seed <= 5; seed++) {
      Files.deleteIfExists(ringFile);
      try (LogRing w = LogRing.create(ringFile, 1 << 20); LogRing r = LogRing.open(ringFile)) {
        ReplayFeed feed = new ReplayFeed(w, 0, ReplayFeed.AtGuestPowerOff.STOP_THERE);
        SplittableRandom rnd = new SplittableRandom(seed);
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        for (int p = 0; p < stream.length; ) {
          int n = Math.min(stream.length - p, 1 + rnd.nextInt(seed == 1 ? 7 : 9000));
          assertThat(feed.feed(stream, p, n, SHORT)).isTrue();
          p += n;
          got.write(drainRing(r));
          if (12 + p < off.end()) {
            assertThat(feed.guestPowerOff()).isEmpty();
          } else {
            assertThat(feed.guestPowerOff()).contains(new ReplayFeed.GuestPowerOff(
                ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN, off.end(), POWER_OFF_ICOUNT));
            assertThat(got.toByteArray()).isEqualTo(expected);
            assertThat(feed.replayed()).as("the END is the feed's own").isEqualTo(off.end());
            assertThat(feed.pendingBytes()).isZero();
            assertThat(feed.partialBytes()).isZero();
          }
        }
        assertThat(got.toByteArray()).isEqualTo(expected);
        assertThat(feed.ended()).as("the primary's END was received").isTrue();
        assertThat(feed.icount()).as("everything received is counted").isEqualTo(RECORDED_ICOUNT);
        assertThat(feed.events()).isEqualTo(evs.size());
        assertThat(feed.ringEnd()).isEqualTo(off.end() + 1);
        assertThat(w.writerClosed()).as("QEMU stops at END; the ring stays open").isFalse();
      }
    }
  }

  @Test
  void feedOnGivesEverythingToTheRingAndStillReportsTheGuestsPowerOff() throws Exception {
    byte[] stream = stream("linux-work-poweroff.bin.gz");
    Ev off = firstGuestPowerOff(events(stream));
    try (LogRing w = LogRing.create(ringFile, 1 << 20); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w);
      assertThat(feed.feed(stream, 0, stream.length, SHORT)).isTrue();
      assertThat(drainRing(r)).isEqualTo(stream);
      assertThat(feed.guestPowerOff()).contains(new ReplayFeed.GuestPowerOff(
          ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN, off.end(), POWER_OFF_ICOUNT));
      assertThat(feed.replayed()).isEqualTo(12 + stream.length);
    }
  }

  /** The END after the guest's power-off waits for room like any event when the backup is behind. */
  @Test
  void stopThereWithAFullRingDeliversTheEndOnceThereIsRoom() throws Exception {
    byte[] stream = stream("linux-work-poweroff.bin.gz");
    Ev off = firstGuestPowerOff(events(stream));
    try (LogRing w = LogRing.create(ringFile, 4096); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w, 0, ReplayFeed.AtGuestPowerOff.STOP_THERE);
      assertThat(feed.feed(stream, 0, stream.length, Duration.ZERO)).isFalse();
      assertThat(feed.pendingBytes()).isEqualTo(off.end() + 1 - feed.ringEnd());
      ByteArrayOutputStream got = new ByteArrayOutputStream();
      while (!feed.flush(Duration.ZERO) || r.readable() > 0) {
        got.write(drainRing(r));
      }
      byte[] expected = Arrays.copyOf(stream, (int) (off.end() - 12) + 1);
      expected[expected.length - 1] = (byte) ReplayEventKind.END.code();
      assertThat(got.toByteArray()).isEqualTo(expected);
    }
  }

  @Test
  void aGuestThatPoweredOffCannotGoLive() throws Exception {
    byte[] stream = stream("linux-work-poweroff.bin.gz");
    Ev off = firstGuestPowerOff(events(stream));
    for (ReplayFeed.AtGuestPowerOff mode : ReplayFeed.AtGuestPowerOff.values()) {
      Files.deleteIfExists(ringFile);
      try (LogRing w = LogRing.create(ringFile, 1 << 20)) {
        ReplayFeed feed = new ReplayFeed(w, 0, mode);
        feed.feed(stream, 0, (int) (off.end() - 12) + 40, SHORT); // the primary died just after it
        assertThatThrownBy(() -> feed.goLive(SHORT)).as(mode.toString())
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("has powered off (guest-shutdown at icount " + POWER_OFF_ICOUNT + ")");
      }
    }
  }

  /** Damage after the guest's power-off is still refused; the END already fed stays the end. */
  @Test
  void corruptInputAfterThePowerOffIsRefusedAndEndsTheStream() throws Exception {
    byte[] stream = stream("linux-work-poweroff.bin.gz").clone();
    List<Ev> evs = events(stream);
    Ev off = firstGuestPowerOff(evs);
    Ev after = evs.get(evs.indexOf(off) + 3);
    stream[(int) (after.start() - 12)] = 21; // a kind QEMU never writes
    try (LogRing w = LogRing.create(ringFile, 1 << 20); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w, 0, ReplayFeed.AtGuestPowerOff.STOP_THERE);
      assertThatThrownBy(() -> feed.feed(stream, 0, stream.length, SHORT))
          .isInstanceOf(ReplayLogException.class).hasMessageContaining("offset " + after.start());
      assertThat(w.writerClosed()).isTrue();
      byte[] got = drainRing(r);
      assertThat(got).hasSize((int) (off.end() - 12) + 1);
      assertThat(got[got.length - 1]).isEqualTo((byte) ReplayEventKind.END.code());
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
  void goLiveDropsAnOpenWarpAndThePartialEventAppendsTheTailAndLeavesTheRingOpen() throws Exception {
    // INSTRUCTION 100, WARP_ACCOUNT, INSTRUCTION 50, INTERRUPT: all fed; then an idle warp opens
    // (WARP_START, CLOCK_VIRTUAL_RT, WARP_START) and an ASYNC_NET is cut short.
    byte[] fed = HexFormat.of().parseHex("0000000064" + "1f" + "0000000032" + "01");
    byte[] warp = HexFormat.of().parseHex("1e" + "1d0000000000000009" + "1e");
    byte[] partial = HexFormat.of().parseHex("09" + "00" + "00000000");
    try (LogRing w = LogRing.create(ringFile, 4096); LogRing r = LogRing.open(ringFile)) {
      ReplayFeed feed = new ReplayFeed(w, 1000, ReplayFeed.AtGuestPowerOff.FEED_ON);
      feed.feed(fed, 0, fed.length, SHORT);
      feed.feed(warp, 0, warp.length, SHORT);
      feed.feed(partial, 0, partial.length, SHORT);
      assertThat(feed.partialBytes()).isEqualTo(partial.length);
      assertThat(feed.heldBackBytes()).isEqualTo(warp.length);
      assertThat(feed.goLiveEnd()).isEqualTo(12 + fed.length);
      assertThat(feed.safeEnd()).isEqualTo(12 + fed.length + warp.length);
      assertThat(feed.ringEnd()).as("the open warp was never fed").isEqualTo(12 + fed.length);
      ReplayFeed.GoLiveTail tail = new ReplayFeed.GoLiveTail(
          ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 3);
      long icount = feed.goLive(tail, SHORT);
      assertThat(icount).isEqualTo(1000 + 100 + 50);
      ByteArrayOutputStream expected = new ByteArrayOutputStream();
      expected.write(fed);
      expected.write(ReplayLogEncoder.goLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 3));
      assertThat(drainRing(r)).isEqualTo(expected.toByteArray());
      assertThat(w.writerClosed()).isFalse();
      assertThat(feed.pendingBytes()).isZero();
      assertThat(feed.replayed()).isEqualTo(12 + fed.length);
      assertThatThrownBy(() -> feed.feed(fed, 0, 1, SHORT))
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("gone live");
    }
  }

  @Test
  void theDefaultTailIsTheEncoders() {
    assertThat(ReplayFeed.GoLiveTail.DEFAULT.bytes()).isEqualTo(ReplayLogEncoder.goLiveTail());
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
