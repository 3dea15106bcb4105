package org.qemuft.controller.channel;

import static org.assertj.core.api.Assertions.assertThat;

import com.github.luben.zstd.EndDirective;
import com.github.luben.zstd.ZstdCompressCtx;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qemuft.controller.channel.Recorder.Ack;
import org.qemuft.controller.channel.Recorder.Connected;
import org.qemuft.controller.channel.Recorder.Disconnected;

/**
 * Damaged and out-of-order frames: each resets the connection, nothing of the bad frame reaches
 * the backup's controller, the primary redials, resumes at the backup's resume offset, and the
 * backup ends up with exactly the stream the primary shipped.
 */
class ChannelCorruptionTest extends ChannelTestBase {
  private static final int H = TestFrames.HEADER;

  /** A change made on the wire to the third LOG frame of the first connection. */
  static Stream<Arguments> damage() {
    return Stream.of(
        damage("magic, bit 0 of byte 0", f -> flip(f, 0, 0), "bad magic"),
        damage("version, bit 1", f -> flip(f, 4, 1), "protocol version 3"),
        damage("type, bit 2", f -> flip(f, 5, 2), "header CRC32C mismatch"),
        damage("flags: the compressed bit", f -> flip(f, 7, 0), "header CRC32C mismatch"),
        damage("sequence number, lowest bit", f -> flip(f, 15, 0), "header CRC32C mismatch"),
        damage("offset, bit 3", f -> flip(f, 23, 3), "header CRC32C mismatch"),
        damage("length, top bit (would claim 2 GiB)", f -> flip(f, 24, 7), "header CRC32C mismatch"),
        damage("length, bit 3 of the top byte (would claim 128 MiB)", f -> flip(f, 24, 3), "header CRC32C mismatch"),
        damage("length, bit 3 of the 2nd byte (would wait for 512 KiB more)", f -> flip(f, 25, 3), "header CRC32C mismatch"),
        damage("length, lowest bit", f -> flip(f, 27, 0), "header CRC32C mismatch"),
        damage("header CRC", f -> flip(f, 30, 5), "header CRC32C mismatch"),
        damage("frame CRC", f -> flip(f, 33, 6), "CRC32C mismatch in a LOG frame"),
        damage("payload, first byte", f -> flip(f, H, 0), "CRC32C mismatch in a LOG frame"),
        damage("payload, middle byte", f -> flip(f, H + (f.length - H) / 2, 4), "CRC32C mismatch in a LOG frame"),
        damage("payload, last byte", f -> flip(f, f.length - 1, 7), "CRC32C mismatch in a LOG frame"),
        damage("payload, two bytes swapped", f -> swap(f, H + 1, f.length - 2), "CRC32C mismatch in a LOG frame"),
        damage("frame lost (sequence gap)", f -> new byte[0], "sequence gap: expected frame"),
        damage("frame repeated", f -> concat(f, f), "sequence gap: expected frame"));
  }

  private static Arguments damage(String name, UnaryOperator<byte[]> how, String reason) {
    return Arguments.of(name, how, reason);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("damage")
  void aDamagedFrameResetsTheConnectionAndTheStreamResumesIntact(String name, UnaryOperator<byte[]> how, String reason)
      throws Exception {
    byte[] events = ReplayLogs.events("seabios-sigterm");
    long[] bounds = ReplayLogs.cut(events, name.hashCode(), 256, 4096);
    Recorder b = new Recorder();
    b.autoAck = true;
    LogChannel backup = listen(settings(true), b);

    AtomicLong damagedAt = new AtomicLong(-1);
    AtomicLong damagedEnd = new AtomicLong(-1);
    int[] logs = new int[1];
    FrameProxy proxy = track(new FrameProxy(backup.localAddress(), (conn, index, frame) -> {
      if (conn != 0 || frame[5] != TestFrames.LOG || ++logs[0] != 3) {
        return frame;
      }
      ByteBuffer f = ByteBuffer.wrap(frame);
      long off = f.getLong(16);
      int raw = (f.getShort(6) & 1) != 0 ? f.getInt(H) : f.getInt(24);
      damagedAt.set(off);
      damagedEnd.set(off + raw);
      return how.apply(frame.clone());
    }));
    Recorder p = new Recorder();
    LogChannel primary = dial(proxy.address(), settings(true), p);

    try (Shipper shipper = new Shipper(primary, events, bounds)) {
      p.await(Ack.class, a -> a.held() == events.length);
    }
    assertThat(b.stream()).as("the backup holds exactly the primary's stream").isEqualTo(events);
    assertThat(b.violations()).isEmpty();

    Disconnected d = b.await(Disconnected.class);
    assertThat(d.reason()).startsWith("reset: ").contains(reason);
    // The primary heard why (the backup's GOODBYE names the fault) or saw the connection drop.
    assertThat(p.await(Disconnected.class).reason()).satisfiesAnyOf(
        r -> assertThat(r).contains(reason), r -> assertThat(r).contains("connection"));
    long expectedResume = name.startsWith("frame repeated") ? damagedEnd.get() : damagedAt.get();
    assertThat(p.await(Connected.class, 2, x -> true).peer().resumeOffset()).isEqualTo(expectedResume);
    assertThat(backup.stats().resets()).isEqualTo(1);
    assertThat(backup.stats().connects()).isEqualTo(2);
    assertThat(primary.stats().connects()).isEqualTo(2);
    assertThat(proxy.connections()).isEqualTo(2);
  }

  /** Frames that are well-formed on the wire (valid CRCs) but break the protocol, from a hand-driven primary. */
  static Stream<Arguments> badFrames() {
    return Stream.of(
        bad("protocol version 2", (p, at) -> p.send(TestFrames.frame(TestFrames.MAGIC, 2, TestFrames.LOG, 0, p.nextSeq(), at, 1, new byte[1])),
            "protocol version 2"),
        bad("unknown type 9", (p, at) -> p.sendFrame(9, 0, 0, new byte[0]), "unknown frame type 9"),
        bad("flag not defined", (p, at) -> p.sendFrame(TestFrames.LOG, 0x80, at, new byte[] {1}), "flags 0x80 not allowed on LOG"),
        bad("length beyond the bound", (p, at) -> p.send(TestFrames.frame(TestFrames.MAGIC, 1, TestFrames.LOG, 0, p.nextSeq(), at,
            Wire.MAX_PAYLOAD + 1, new byte[0])), "more than the " + Wire.MAX_PAYLOAD + " allowed"),
        bad("sequence gap", (p, at) -> {
          p.skipSeq();
          p.sendFrame(TestFrames.LOG, 0, at, new byte[] {1});
        }, "sequence gap: expected frame 4, got 5"),
        bad("offset gap", (p, at) -> p.sendFrame(TestFrames.LOG, 0, at + 5, new byte[] {1}), "offset gap: a LOG frame starts at"),
        bad("offset overlap", (p, at) -> p.sendFrame(TestFrames.LOG, 0, at - 1, new byte[] {1}), "offset overlap"),
        bad("empty LOG", (p, at) -> p.sendFrame(TestFrames.LOG, 0, at, new byte[0]), "LOG frame with 0 bytes of events"),
        bad("compressed garbage", (p, at) -> p.sendFrame(TestFrames.LOG, 1, at, new byte[] {0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8}),
            "does not decode"),
        bad("compressed, one byte fewer than declared", (p, at) -> p.sendFrame(TestFrames.LOG, 1, at, zstd(new byte[10], 11, 20)),
            "decodes to 10 bytes"),
        bad("compressed, more than declared", (p, at) -> p.sendFrame(TestFrames.LOG, 1, at, zstd(new byte[10], 9, 20)),
            "decodes to more than the 9 bytes it declares"),
        bad("compressed, absurd declared length", (p, at) -> p.sendFrame(TestFrames.LOG, 1, at, zstd(new byte[10], -1, 20)),
            "declares 4294967295 bytes"),
        bad("compressed with a 2 MiB window (the decoder allows 1 MiB)", (p, at) -> p.sendFrame(TestFrames.LOG, 1, at,
            zstd(new byte[10], 10, 21)), "too much memory"),
        bad("an ACK from the primary", (p, at) -> p.sendFrame(TestFrames.ACK, 0, at, new byte[16]), "the primary sent an ACK"),
        bad("HELLO again", (p, at) -> p.sendFrame(TestFrames.HELLO, 0, 0, TestFrames.hello(TestFrames.PRIMARY, PAIR, EPOCH, new byte[32])),
            "it sent a HELLO frame after authentication"),
        bad("HEARTBEAT with a payload", (p, at) -> p.sendFrame(TestFrames.HEARTBEAT, 0, 0, new byte[3]), "HEARTBEAT with 3 bytes"));
  }

  @FunctionalInterface
  interface BadFrame {
    void send(RawPeer primary, long at) throws Exception;
  }

  private static Arguments bad(String name, BadFrame how, String reason) {
    return Arguments.of(name, how, reason);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("badFrames")
  void aFrameThatBreaksTheProtocolResetsAndNothingOfItIsDelivered(String name, BadFrame how, String reason) throws Exception {
    byte[] events = ReplayLogs.events("seabios-sigterm");
    long[] bounds = ReplayLogs.cut(events, 11, 256, 4096);
    Recorder b = new Recorder();
    b.autoAck = true;
    LogChannel backup = listen(settings(true), b);
    long good = bounds[2];
    try (RawPeer hostile = RawPeer.connect(backup.localAddress())) {
      assertThat(hostile.authenticateAsPrimary(PAIR, EPOCH, SECRET)).isZero();
      hostile.sendFrame(TestFrames.LOG, 0, 0, Arrays.copyOfRange(events, 0, (int) bounds[1]));
      hostile.sendFrame(TestFrames.LOG, 0, bounds[1], Arrays.copyOfRange(events, (int) bounds[1], (int) good));
      how.send(hostile, good);
      hostile.awaitClosedByPeer();
      assertThat(b.await(Disconnected.class).reason()).startsWith("reset: ").contains(reason);
      // The backup told the peer why before hanging up.
      TestFrames.Frame bye = hostile.awaitFrame(f -> f.type() == TestFrames.GOODBYE);
      assertThat(bye.flags()).isEqualTo(2);
      assertThat(new String(bye.payload(), java.nio.charset.StandardCharsets.UTF_8)).contains(reason);
    }
    assertThat(b.stream()).as("only the good frames were delivered").isEqualTo(Arrays.copyOf(events, (int) good));

    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), settings(true), p);
    assertThat(p.await(Connected.class).peer().resumeOffset()).isEqualTo(good);
    try (Shipper shipper = new Shipper(primary, events, bounds)) {
      p.await(Ack.class, a -> a.held() == events.length);
    }
    assertThat(b.stream()).isEqualTo(events);
    assertThat(b.violations()).isEmpty();
    assertThat(backup.stats().resets()).isEqualTo(1);
  }

  private static byte[] flip(byte[] f, int at, int bit) {
    f[at] ^= (byte) (1 << bit);
    return f;
  }

  private static byte[] swap(byte[] f, int i, int j) {
    if (f[i] == f[j]) {
      f[i] ^= 0x55; // swapping equal bytes changes nothing; make it a real change
    }
    byte t = f[i];
    f[i] = f[j];
    f[j] = t;
    return f;
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] c = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, c, a.length, b.length);
    return c;
  }

  /** A compressed LOG payload made by zstd directly, with the raw length it claims. */
  private static byte[] zstd(byte[] raw, int declared, int windowLog) {
    try (ZstdCompressCtx c = new ZstdCompressCtx()) {
      c.setWindowLog(windowLog);
      ByteBuffer out = ByteBuffer.allocate(4 + 256);
      out.putInt(declared);
      ByteBuffer in = ByteBuffer.wrap(raw);
      while (!c.compressByteBufferStream(out, in, EndDirective.FLUSH) || in.hasRemaining()) {
        // FLUSH until everything is out
      }
      return Arrays.copyOf(out.array(), out.position());
    }
  }
}
