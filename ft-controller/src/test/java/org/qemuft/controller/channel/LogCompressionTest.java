package org.qemuft.controller.channel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qemuft.controller.channel.Recorder.Ack;
import org.qemuft.controller.channel.Recorder.Connected;

/** zstd on the wire, on real QEMU replay logs: it compresses, and what comes out is exactly what went in. */
class LogCompressionTest extends ChannelTestBase {

  /** Compresses a stream frame by frame through one compressor and decodes it through one decompressor. */
  private static long roundTrip(byte[] events, long[] bounds) throws Exception {
    long wire = 0;
    byte[] out = new byte[64];
    byte[] raw = new byte[64];
    int[] produced = new int[1];
    try (LogCompression.Compressor c = new LogCompression.Compressor();
        LogCompression.Decompressor d = new LogCompression.Decompressor()) {
      for (int i = 0; i + 1 < bounds.length; i++) {
        int from = (int) bounds[i];
        int len = (int) (bounds[i + 1] - bounds[i]);
        out = c.compress(events, from, len, out, 0, produced);
        wire += produced[0];
        raw = d.decompress(out, produced[0], raw);
        assertThat(Arrays.equals(raw, 0, len, events, from, from + len)).as("frame %d decodes exactly", i).isTrue();
      }
    }
    return wire;
  }

  @ParameterizedTest(name = "{0}, frames of {1}..{2} bytes")
  @CsvSource({
      "linux-boot-blkreplay, 256, 1024, 10",
      "linux-boot-blkreplay, 4096, 4096, 30",
      "linux-boot-blkreplay, 65536, 65536, 50",
      "seabios-sigterm, 4096, 4096, 10",
      "ipxe-net-serial, 4096, 4096, 2"})
  void aRealReplayLogCompressesAndRoundTripsExactly(String log, int min, int max, double atLeast) throws Exception {
    byte[] events = ReplayLogs.events(log);
    long[] bounds = ReplayLogs.cut(events, 1, min, max);
    long wire = roundTrip(events, bounds);
    double ratio = (double) events.length / wire;
    double withHeaders = (double) events.length / (wire + (long) Wire.HEADER * (bounds.length - 1));
    System.out.printf("compression %s, %d frames of %d..%d B: %d -> %d bytes, ratio %.1f (%.1f with frame headers)%n",
        log, bounds.length - 1, min, max, events.length, wire, ratio, withHeaders);
    assertThat(ratio).isGreaterThan(atLeast);
  }

  /**
   * The choice in docs/channel.md: one zstd stream per connection, flushed per frame, against
   * compressing each frame alone and against the JDK's deflate with a sync flush per frame.
   */
  @ParameterizedTest(name = "frames of {0}..{1} bytes")
  @CsvSource({"256, 256", "1024, 1024", "4096, 4096", "16384, 16384", "65536, 65536"})
  void aStreamFlushedPerFrameBeatsCompressingEachFrameAlone(int min, int max) throws Exception {
    byte[] events = ReplayLogs.events("linux-boot-blkreplay");
    long[] bounds = ReplayLogs.cut(events, 1, min, max);
    long stream = roundTrip(events, bounds);
    long alone = 0;
    long deflate = 0;
    java.util.zip.Deflater d = new java.util.zip.Deflater(1, true);
    byte[] buf = new byte[(int) com.github.luben.zstd.Zstd.compressBound(max * 4L + (1 << 16))];
    for (int i = 0; i + 1 < bounds.length; i++) {
      int from = (int) bounds[i];
      int len = (int) (bounds[i + 1] - bounds[i]);
      alone += com.github.luben.zstd.Zstd.compressByteArray(buf, 0, buf.length, events, from, len, LogCompression.LEVEL);
      d.setInput(events, from, len);
      int n;
      do {
        n = d.deflate(buf, 0, buf.length, java.util.zip.Deflater.SYNC_FLUSH);
        deflate += n;
      } while (n == buf.length || !d.needsInput());
    }
    d.end();
    long frames = bounds.length - 1;
    long zstdBytes = stream - 4 * frames; // without our 4-byte length prefix, like the others
    System.out.printf("compression choice, boot log, %d frames of %d..%d B: zstd-%d stream %.1f (%.1f with the length"
        + " prefix, %.1f with frame headers too), each frame alone %.1f, deflate-1 sync-flush stream %.1f%n", frames, min, max,
        LogCompression.LEVEL, (double) events.length / zstdBytes, (double) events.length / stream,
        (double) events.length / (stream + Wire.HEADER * frames), (double) events.length / alone, (double) events.length / deflate);
    assertThat(zstdBytes).isLessThan(alone);
  }

  @Test
  void incompressibleBytesRoundTripInOneBigFrame() throws Exception {
    byte[] noise = new byte[Wire.MAX_LOG_BYTES];
    new SplittableRandom(3).nextBytes(noise);
    long wire = roundTrip(noise, new long[] {0, noise.length});
    assertThat(wire).isLessThanOrEqualTo(Wire.MAX_PAYLOAD); // zstd's worst case still fits a frame
  }

  @Test
  void framesDependOnTheirPredecessorsSoEachConnectionNeedsFreshStreams() throws Exception {
    byte[] events = ReplayLogs.events("seabios-sigterm");
    long[] bounds = ReplayLogs.cut(events, 5, 4096, 4096);
    int[] n = new int[1];
    byte[] first;
    byte[] second;
    try (LogCompression.Compressor c = new LogCompression.Compressor()) {
      first = Arrays.copyOf(c.compress(events, 0, (int) bounds[1], new byte[16], 0, n), n[0]);
      second = Arrays.copyOf(c.compress(events, (int) bounds[1], (int) (bounds[2] - bounds[1]), new byte[16], 0, n), n[0]);
    }
    // A decoder that did not see the first frame cannot decode the second: this is why both
    // ends start new streams on every connection, and why a lost frame must reset.
    try (LogCompression.Decompressor fresh = new LogCompression.Decompressor()) {
      assertThatThrownBy(() -> fresh.decompress(second, second.length, new byte[16]))
          .isInstanceOf(ChannelProtocolException.class);
    }
    try (LogCompression.Decompressor d = new LogCompression.Decompressor()) {
      d.decompress(first, first.length, new byte[16]);
      byte[] out = d.decompress(second, second.length, new byte[16]);
      assertThat(Arrays.equals(out, 0, (int) (bounds[2] - bounds[1]), events, (int) bounds[1], (int) bounds[2])).isTrue();
    }
  }

  @Test
  void randomPayloadsNeverDecodeSilentlyOrThrowAnythingElse() throws Exception {
    SplittableRandom r = new SplittableRandom(99);
    int refused = 0;
    for (int i = 0; i < 2000; i++) {
      byte[] p = new byte[4 + r.nextInt(200)];
      r.nextBytes(p);
      if (i % 2 == 0) {
        Wire.putInt(p, 0, 1 + r.nextInt(1000)); // a plausible declared length
      }
      if (i % 4 == 0 && p.length >= 8) {
        p[4] = 0x28; // zstd's frame magic (0xFD2FB528, little-endian), so the decoder gets past it
        p[5] = (byte) 0xb5;
        p[6] = 0x2f;
        p[7] = (byte) 0xfd;
      }
      try (LogCompression.Decompressor d = new LogCompression.Decompressor()) {
        d.decompress(p, p.length, new byte[16]);
      } catch (ChannelProtocolException e) {
        refused++;
      }
    }
    // A decode that succeeds must have produced exactly the declared bytes, which random input
    // practically never does; all the rest must be refused as a protocol error.
    assertThat(refused).isGreaterThan(1990);
  }

  @Test
  void aBootLogCrossesTheChannelAtAFractionOfItsSize() throws Exception {
    byte[] events = ReplayLogs.events("linux-boot-blkreplay");
    long[] bounds = ReplayLogs.cut(events, 8, 2048, 8192);
    Recorder b = new Recorder();
    b.autoAck = true;
    LogChannel backup = listen(settings(true), b);
    Recorder p = new Recorder();
    LogChannel primary = dial(backup.localAddress(), settings(true), p);
    p.await(Connected.class);
    for (int i = 0; i + 1 < bounds.length; i++) {
      primary.sendLog(bounds[i], events, (int) bounds[i], (int) (bounds[i + 1] - bounds[i]));
    }
    p.await(Ack.class, a -> a.held() == events.length);
    assertThat(b.stream()).isEqualTo(events);
    ChannelStats s = primary.stats();
    double ratio = (double) s.logBytesRaw() / s.logBytesWire();
    System.out.printf("channel: %d bytes of boot log in %d frames took %d bytes on the wire (ratio %.1f, headers included)%n",
        s.logBytesRaw(), bounds.length - 1, s.logBytesWire(), ratio);
    assertThat(s.logBytesRaw()).isEqualTo(events.length);
    assertThat(ratio).isGreaterThan(20);
  }
}
