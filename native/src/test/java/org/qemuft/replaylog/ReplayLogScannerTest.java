package org.qemuft.replaylog;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ReplayLogScannerTest {

  private static Map<ReplayEventKind, Integer> byKind(List<Ev> events) {
    Map<ReplayEventKind, Integer> m = new EnumMap<>(ReplayEventKind.class);
    for (Ev e : events) {
      m.merge(ReplayEventKind.of(e.kind()), 1, Integer::sum);
    }
    return m;
  }

  @ParameterizedTest
  @ValueSource(strings = {
    "seabios-sigterm.bin.gz", "seabios-qmp-quit.bin.gz",
    "ipxe-net-serial.bin.gz", "ipxe-input-net-serial.bin.gz", "linux-boot-blkreplay.bin.gz"})
  void realFileLogsScanToEndExactlyAndAgreeWithTheReference(String name) {
    byte[] log = LogGen.resource(name);
    Scans.Outcome whole = Scans.whole(log, Scans.FILE);
    assertThat(whole.error()).isNull();
    assertThat(whole.endSeen()).isTrue();
    assertThat(whole.atBoundary()).isTrue();
    assertThat(whole.safeEnd()).isEqualTo(log.length);
    assertThat(whole.events().getLast().kind()).isEqualTo(ReplayEventKind.END.code());
    // QEMU's exit path always logs SHUTDOWN(host-signal) just before END (replay_finish).
    assertThat(whole.events().get(whole.events().size() - 2).kind())
        .isEqualTo(ReplayEventKind.SHUTDOWN_HOST_SIGNAL.code());

    ReferenceDecoder.Result ref = ReferenceDecoder.decodeFile(log);
    assertThat(ref.status()).isEqualTo(ReferenceDecoder.Status.COMPLETE);
    assertThat(whole.events()).isEqualTo(ref.events());

    SplittableRandom r = new SplittableRandom(name.hashCode());
    int[] chunkings = log.length > 1_000_000 ? new int[] {4096, 65536} : new int[] {1, 3, 17, 4096};
    for (int maxChunk : chunkings) {
      assertThat(Scans.chunked(log, r, maxChunk, Scans.FILE).events()).isEqualTo(ref.events());
    }
  }

  @Test
  void theQmpQuitLogEndsAtTheIcountQueryReplayReportedAfterStop() {
    // Recorded with: stop; query-replay -> icount 13348954; quit (see the resources' README).
    Scans.Outcome o = Scans.whole(LogGen.resource("seabios-qmp-quit.bin.gz"), Scans.FILE);
    assertThat(o.icount()).isEqualTo(13_348_954L);
    assertThat(byKind(o.events()))
        .containsEntry(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 1)
        .containsEntry(ReplayEventKind.SHUTDOWN_HOST_SIGNAL, 1)
        .containsEntry(ReplayEventKind.END, 1);
  }

  @Test
  void recordedInputNetAndSerialEventsAreFound() {
    Scans.Outcome o = Scans.whole(LogGen.resource("ipxe-input-net-serial.bin.gz"), Scans.FILE);
    assertThat(byKind(o.events()))
        .containsEntry(ReplayEventKind.ASYNC_INPUT, 14)
        .containsEntry(ReplayEventKind.ASYNC_INPUT_SYNC, 12)
        .containsEntry(ReplayEventKind.ASYNC_CHAR_READ, 7)
        .containsEntry(ReplayEventKind.ASYNC_NET, 5);
  }

  @Test
  void aLinuxBootWithABlkreplayDiskHasBlockAndSerialWriteEvents() {
    Scans.Outcome o = Scans.whole(LogGen.resource("linux-boot-blkreplay.bin.gz"), Scans.FILE);
    assertThat(o.error()).isNull();
    assertThat(o.events()).hasSize(2_440_759);
    assertThat(o.icount()).isEqualTo(1_778_377_058L);
    assertThat(byKind(o.events()))
        .containsEntry(ReplayEventKind.ASYNC_BLOCK, 23)
        .containsEntry(ReplayEventKind.CHAR_WRITE, 87);
  }

  @Test
  void aPipeRecordedStreamHasNoHeaderAndEndsWithQemusVersionTrailer() {
    byte[] log = LogGen.resource("seabios-pipe-stream.bin.gz");
    assertThat(ByteBuffer.wrap(log, log.length - 4, 4).getInt())
        .isEqualTo(ReplayLogScanner.REPLAY_VERSION);
    Scans.Outcome o = Scans.whole(log, Scans.STREAM);
    assertThat(o.error()).isNull();
    assertThat(o.endSeen()).isTrue();
    assertThat(o.atBoundary()).isTrue();
    assertThat(o.safeEnd()).isEqualTo(log.length - 4); // END's end, not the trailer's
    assertThat(o.events().getLast().end()).isEqualTo(log.length - 4);

    // Cut inside the trailer: the events are whole, but the stream is not at a boundary.
    byte[] cut = java.util.Arrays.copyOf(log, log.length - 2);
    Scans.Outcome c = Scans.whole(cut, Scans.STREAM);
    assertThat(c.error()).isNull();
    assertThat(c.atBoundary()).isFalse();
    assertThat(c.events()).isEqualTo(o.events());
  }

  @Test
  void aFileLogRefusesTheTrailerAndAnythingElseAfterEnd() {
    byte[] log = LogGen.resource("seabios-sigterm.bin.gz");
    byte[] withTrailer = ByteBuffer.allocate(log.length + 4).put(log)
        .putInt(ReplayLogScanner.REPLAY_VERSION).array();
    Scans.Outcome o = Scans.whole(withTrailer, Scans.FILE);
    assertThat(o.error()).isNotNull();
    assertThat(o.error().offset()).isEqualTo(log.length);
    assertThat(o.error().getMessage())
        .contains("byte 0x00 at offset " + log.length)
        .contains("END must be the last event");
  }

  @Test
  void aStreamRefusesMoreThanTheTrailerAfterEnd() {
    byte[] log = LogGen.resource("seabios-pipe-stream.bin.gz");
    byte[] more = java.util.Arrays.copyOf(log, log.length + 1);
    more[log.length] = 0x27;
    Scans.Outcome o = Scans.whole(more, Scans.STREAM);
    assertThat(o.error().offset()).isEqualTo(log.length);
    assertThat(o.error().getMessage()).contains("byte 0x27").contains("follows the END event");

    byte[] wrongTrailer = java.util.Arrays.copyOf(log, log.length);
    wrongTrailer[log.length - 2] = 0x21;
    Scans.Outcome w = Scans.whole(wrongTrailer, Scans.STREAM);
    assertThat(w.error().offset()).isEqualTo(log.length - 2);
  }

  @Test
  void aKilledRecordingHasAnUnwrittenHeaderWhichIsRefusedUnlessAllowed() {
    byte[] log = LogGen.resource("seabios-killed.bin.gz");
    Scans.Outcome strict = Scans.whole(log, Scans.FILE);
    assertThat(strict.error().offset()).isZero();
    assertThat(strict.error().getMessage())
        .contains("version 0x00000000")
        .contains("still being recorded or its QEMU was killed");
    assertThat(strict.events()).isEmpty();

    Scans.Outcome lenient = Scans.whole(log, l -> ReplayLogScanner.forLogFile(l, true));
    assertThat(lenient.error()).isNull();
    assertThat(lenient.endSeen()).isFalse();
    assertThat(lenient.atBoundary()).isFalse(); // killed mid-write: the last event is cut
    assertThat(lenient.safeEnd()).isLessThan(log.length).isGreaterThan(log.length - 18);
    assertThat(lenient.events()).hasSizeGreaterThan(100_000);
  }

  @Test
  void anUnknownVersionNamesTheVersionFoundAndTheSupportedOne() {
    byte[] log = LogGen.resource("seabios-sigterm.bin.gz");
    log[3] = 0x0b;
    Scans.Outcome o = Scans.chunked(log, new SplittableRandom(1), 5, Scans.FILE);
    assertThat(o.error().offset()).isZero();
    assertThat(o.error().getMessage())
        .contains("version 0x00e0200b")
        .contains("0x00e0200c");
  }

  @Test
  void anUnknownKindNamesItsOffsetAndValue() {
    byte[] log = {0, 0, 0, 0, 7, 31, 42, 0};
    Scans.Outcome o = Scans.whole(log, l -> ReplayLogScanner.forStream(l, 1000, 50));
    assertThat(o.events()).containsExactly(new Ev(0, 1000, 1005, 57), new Ev(31, 1005, 1006, 57));
    assertThat(o.error().offset()).isEqualTo(1006);
    assertThat(o.error().getMessage()).contains("unknown event kind 0x2a (42) at offset 1006");
  }

  @Test
  void theReservedShutdownCodeIsRefused() {
    Scans.Outcome o = Scans.whole(new byte[] {21}, Scans.STREAM);
    assertThat(o.error().getMessage()).contains("0x15").contains("SHUTDOWN_CAUSE__MAX");
  }

  @Test
  void instructionCountsOfZeroOrAboveIntMaxAreRefused() {
    Scans.Outcome zero = Scans.whole(new byte[] {0, 0, 0, 0, 0}, Scans.STREAM);
    assertThat(zero.error().offset()).isEqualTo(1);
    assertThat(zero.error().getMessage()).contains("count 0x00000000");
    Scans.Outcome neg = Scans.whole(new byte[] {0, (byte) 0x80, 0, 0, 0}, Scans.STREAM);
    assertThat(neg.error().getMessage()).contains("count 0x80000000");
    Scans.Outcome max = Scans.whole(new byte[] {0, 0x7f, -1, -1, -1}, Scans.STREAM);
    assertThat(max.error()).isNull();
    assertThat(max.icount()).isEqualTo(Integer.MAX_VALUE);
  }

  @Test
  void lengthsAboveTheLimitsAreRefusedBeforeAnyPayloadArrives() {
    ByteBuffer net = ByteBuffer.allocate(10).put((byte) 9).put((byte) 0).putInt(0)
        .putInt(ReplayLogScanner.MAX_NET_FRAME + 1);
    Scans.Outcome o = Scans.whole(net.array(), Scans.STREAM);
    assertThat(o.error().offset()).isEqualTo(6);
    assertThat(o.error().getMessage()).contains("ASYNC_NET").contains("0x00020001");

    ByteBuffer rnd = ByteBuffer.allocate(9).put((byte) 27).putInt(8).putInt(-1);
    assertThat(Scans.whole(rnd.array(), Scans.STREAM).error().getMessage())
        .contains("RANDOM").contains("0xffffffff").contains("at offset 5");

    ByteBuffer audio = ByteBuffer.allocate(17).put((byte) 26)
        .putLong(ReplayLogScanner.MAX_AUDIO_IN_SAMPLES + 1).putLong(0);
    assertThat(Scans.whole(audio.array(), Scans.STREAM).error().getMessage()).contains("AUDIO_IN");
  }

  @Test
  void inputEventsAreCheckedField_by_field() {
    // key qcode 'a' (0x1e) down, as sendkey records it; then a bad qcode; a bad down byte.
    byte[] ok = hex("05 00000000 00000001 0000001e 01");
    assertThat(Scans.whole(ok, Scans.STREAM).events()).containsExactly(new Ev(5, 0, 14, 0));
    assertThat(Scans.whole(hex("05 00000000 00000001 00000097 01"), Scans.STREAM).error().offset())
        .isEqualTo(9);
    assertThat(Scans.whole(hex("05 00000000 00000001 0000001e 02"), Scans.STREAM).error().offset())
        .isEqualTo(13);
    // key number: u64 then down
    assertThat(Scans.whole(hex("05 00000000 00000000 0000000000000039 00"), Scans.STREAM).events())
        .containsExactly(new Ev(5, 0, 18, 0));
    assertThat(Scans.whole(hex("05 00000000 00000002"), Scans.STREAM).error().offset()).isEqualTo(5);
    // btn 9 does not exist; rel axis 2 does not exist; type 4 (multi-touch came after 7.2)
    assertThat(Scans.whole(hex("05 00000001 00000009 01"), Scans.STREAM).error().offset()).isEqualTo(5);
    assertThat(Scans.whole(hex("05 00000002 00000002 0000000000000001"), Scans.STREAM).error().offset())
        .isEqualTo(5);
    assertThat(Scans.whole(hex("05 00000004"), Scans.STREAM).error().getMessage())
        .contains("input event type 0x00000004 at offset 1");
  }

  @Test
  void afterAnErrorTheScannerRefusesAllInput() throws Exception {
    ReplayLogScanner s = ReplayLogScanner.forStream((k, a, b, i) -> {}, 0, 0);
    assertThatThrownBy(() -> s.feed(new byte[] {(byte) 200}, 0, 1))
        .isInstanceOf(ReplayLogException.class);
    assertThat(s.failed()).isTrue();
    assertThatThrownBy(() -> s.feed(new byte[] {31}, 0, 1))
        .isInstanceOf(ReplayLogException.class)
        .hasMessageContaining("stopped at an earlier error")
        .hasMessageContaining("0xc8");
    assertThat(s.events()).isZero();
    assertThat(s.offset()).isZero();
  }

  @Test
  void aFailingListenerStopsTheScanner() {
    ReplayLogScanner s = ReplayLogScanner.forStream((k, a, b, i) -> {
      throw new IllegalStateException("listener bug");
    }, 0, 0);
    assertThatThrownBy(() -> s.feed(new byte[] {31}, 0, 1)).isInstanceOf(IllegalStateException.class);
    assertThatThrownBy(() -> s.feed(new byte[] {31}, 0, 1))
        .isInstanceOf(ReplayLogException.class)
        .hasMessageContaining("listener");
  }

  @Test
  void safeEndTracksWholeEventsWhileBytesTrickleIn() throws Exception {
    byte[] net = hex("09 00 00000000 00000003 aabbcc 1f");
    ReplayLogScanner s = ReplayLogScanner.forStream((k, a, b, i) -> {}, 100, 0);
    long[] safe = new long[net.length];
    boolean[] boundary = new boolean[net.length];
    for (int i = 0; i < net.length; i++) {
      s.feed(net, i, 1);
      safe[i] = s.safeEnd();
      boundary[i] = s.atEventBoundary();
    }
    assertThat(safe).containsExactly(100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 113, 114);
    assertThat(boundary[11]).isFalse();
    assertThat(boundary[12]).isTrue();
    assertThat(s.offset()).isEqualTo(114);
    assertThat(s.lastKind()).isEqualTo(31);
  }

  @Test
  void theFileHeaderIsASafeCutPointOnceComplete() throws Exception {
    ReplayLogScanner s = ReplayLogScanner.forLogFile((k, a, b, i) -> {}, false);
    byte[] h = ReplayLogEncoder.fileHeader();
    s.feed(h, 0, 11);
    assertThat(s.atEventBoundary()).isFalse();
    assertThat(s.safeEnd()).isZero();
    s.feed(h, 11, 1);
    assertThat(s.atEventBoundary()).isTrue();
    assertThat(s.safeEnd()).isEqualTo(12);
  }

  @Test
  void badArgumentsAreRefused() {
    assertThatThrownBy(() -> ReplayLogScanner.forStream((k, a, b, i) -> {}, -1, 0))
        .isInstanceOf(IllegalArgumentException.class);
    ReplayLogScanner s = ReplayLogScanner.forStream((k, a, b, i) -> {}, 0, 0);
    assertThatThrownBy(() -> s.feed(new byte[4], 2, 3)).isInstanceOf(IndexOutOfBoundsException.class);
  }

  @Test
  void eventKindsMatchQemu72sNumbering() {
    assertThat(ReplayEventKind.values()).hasSize(39);
    assertThat(ReplayEventKind.of(0)).isEqualTo(ReplayEventKind.INSTRUCTION);
    assertThat(ReplayEventKind.of(9)).isEqualTo(ReplayEventKind.ASYNC_NET);
    assertThat(ReplayEventKind.of(12).shutdownCause()).isEqualTo("host-qmp-quit");
    assertThat(ReplayEventKind.of(20).shutdownCause()).isEqualTo("snapshot-load");
    assertThat(ReplayEventKind.of(22)).isEqualTo(ReplayEventKind.CHAR_WRITE);
    assertThat(ReplayEventKind.of(31)).isEqualTo(ReplayEventKind.CHECKPOINT_CLOCK_WARP_ACCOUNT);
    assertThat(ReplayEventKind.of(39)).isEqualTo(ReplayEventKind.END);
    assertThatThrownBy(() -> ReplayEventKind.of(21)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> ReplayEventKind.of(40)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(ReplayEventKind.END::shutdownCause).isInstanceOf(IllegalStateException.class);
  }

  @Test
  void feedingAllocatesNothing() throws Exception {
    // A real log, repeated, fed in irregular chunks straddling events: the steady state must not
    // allocate (the controller scans the primary's whole stream).
    byte[] log = LogGen.resource("ipxe-input-net-serial.bin.gz");
    byte[] events = java.util.Arrays.copyOfRange(log, 12, log.length - 1); // no header, no END
    long[] sink = new long[1];
    ReplayEventListener l = (k, a, b, i) -> sink[0] += k;
    ReplayLogScanner s = ReplayLogScanner.forStream(l, 0, 0);
    int[] chunks = {1, 7, 4093, 65536, 13, 1000};
    ByteBuffer direct = ByteBuffer.allocateDirect(events.length).put(events).flip();
    for (int warm = 0; warm < 20; warm++) {
      feedAll(s, events, chunks);
      s.feed(direct.duplicate());
    }
    com.sun.management.ThreadMXBean mx =
        (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    long tid = Thread.currentThread().threadId();
    long before = mx.getThreadAllocatedBytes(tid);
    for (int i = 0; i < 50; i++) {
      feedAll(s, events, chunks);
    }
    long after = mx.getThreadAllocatedBytes(tid);
    assertThat(s.failed()).isFalse();
    // 50 x 190 KB scanned; allow a little for the measurement itself, nothing per event.
    assertThat(after - before).isLessThan(4096);
    assertThat(sink[0]).isPositive();
  }

  private static void feedAll(ReplayLogScanner s, byte[] data, int[] chunks)
      throws ReplayLogException {
    int p = 0;
    int c = 0;
    while (p < data.length) {
      int n = Math.min(chunks[c++ % chunks.length], data.length - p);
      s.feed(data, p, n);
      p += n;
    }
  }

  static String hexOf(byte[] b) {
    StringBuilder sb = new StringBuilder();
    for (byte x : b) {
      sb.append(String.format("%02x", x & 0xff));
    }
    return sb.toString();
  }

  static byte[] hex(String s) {
    String h = s.replace(" ", "");
    byte[] b = new byte[h.length() / 2];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
    }
    return b;
  }
}
