package org.qemuft.controller.channel;

import com.github.luben.zstd.EndDirective;
import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;
import java.nio.ByteBuffer;

/**
 * zstd on the wire, one stream per connection and direction: each LOG frame's events go through
 * the same compression context and are flushed at the end of the frame, so the frame decodes
 * completely on arrival while later frames still refer back to earlier ones. Small frames (the
 * shipper sends what the ring holds, often a few KiB) compress far better this way than alone
 * (docs/channel.md has the figures). A new connection starts new streams on both sides.
 *
 * <p>A compressed LOG payload is {@code u32 rawLength} followed by zstd's output for the frame.
 */
final class LogCompression {
  /** zstd level 1: measured as good a ratio as level 3 on replay logs, and faster. */
  static final int LEVEL = 1;
  /** 1 MiB of history: the decoder never needs more memory than this for the window. */
  static final int WINDOW_LOG = 20;

  private LogCompression() {}

  /** Compresses one direction's LOG payloads. Used under the connection's write lock. */
  static final class Compressor implements AutoCloseable {
    private final ZstdCompressCtx ctx = new ZstdCompressCtx();

    Compressor() {
      ctx.setLevel(LEVEL);
      ctx.setWindowLog(WINDOW_LOG);
      ctx.setChecksum(false); // the frame's CRC32C covers the bytes; a length check covers the rest
    }

    /**
     * Compresses {@code src[off..off+len)} and flushes; writes the compressed payload (with its
     * length prefix) into {@code out} from index {@code at}. Returns the new buffer (grown if
     * needed) and sets {@code produced[0]} to the payload's length.
     */
    byte[] compress(byte[] src, int off, int len, byte[] out, int at, int[] produced) {
      long bound = at + 4 + Zstd.compressBound(len);
      if (out.length < bound) {
        out = grow(out, (int) bound);
      }
      Wire.putInt(out, at, len);
      ByteBuffer in = ByteBuffer.wrap(src, off, len);
      ByteBuffer dst = ByteBuffer.wrap(out, at + 4, out.length - at - 4);
      while (true) {
        boolean done = ctx.compressByteBufferStream(dst, in, EndDirective.FLUSH);
        if (done && !in.hasRemaining()) {
          break;
        }
        if (!dst.hasRemaining()) {
          int pos = dst.position();
          out = grow(out, out.length + Math.max(len / 4, 4096));
          dst = ByteBuffer.wrap(out, pos, out.length - pos);
        }
      }
      produced[0] = dst.position() - at;
      return out;
    }

    @Override
    public void close() {
      ctx.close();
    }
  }

  /** Decompresses one direction's LOG payloads. Used by the connection's reader thread only. */
  static final class Decompressor implements AutoCloseable {
    private final ZstdDecompressCtx ctx = new ZstdDecompressCtx();

    Decompressor() {
      ctx.setLongMax(WINDOW_LOG);
    }

    /**
     * Decodes a compressed LOG payload {@code payload[0..len)} into {@code out}, returning the
     * buffer (grown to fit) holding exactly the declared raw length from index 0; the raw length
     * is {@code Wire.getInt(payload, 0)}.
     *
     * @throws ChannelProtocolException if the payload is not what the sender's stream would have
     *     produced: a bad length, a zstd error, or more or fewer bytes than declared
     */
    byte[] decompress(byte[] payload, int len, byte[] out) throws ChannelProtocolException {
      if (len < 4) {
        throw new ChannelProtocolException("compressed LOG payload of " + len + " bytes has no length prefix");
      }
      int raw = Wire.getInt(payload, 0);
      if (raw <= 0 || raw > Wire.MAX_LOG_BYTES) {
        throw new ChannelProtocolException("compressed LOG frame declares " + (raw & 0xffffffffL)
            + " bytes of events; 1.." + Wire.MAX_LOG_BYTES + " are allowed");
      }
      if (out.length < raw + 1) {
        out = new byte[Math.max(raw + 1, Math.min(out.length * 2, Wire.MAX_LOG_BYTES + 1))];
      }
      ByteBuffer in = ByteBuffer.wrap(payload, 4, len - 4);
      // One spare byte: a stream that decodes to more than declared shows it by filling the spare.
      ByteBuffer dst = ByteBuffer.wrap(out, 0, raw + 1);
      try {
        for (int stalls = 0; ; ) {
          int inBefore = in.position();
          int outBefore = dst.position();
          ctx.decompressByteBufferStream(dst, in);
          if (dst.position() > raw) {
            throw new ChannelProtocolException("compressed LOG frame decodes to more than the " + raw
                + " bytes it declares");
          }
          if (in.position() == inBefore && dst.position() == outBefore) {
            if (!in.hasRemaining() || ++stalls > 2) {
              break;
            }
          }
        }
      } catch (ZstdException e) {
        throw new ChannelProtocolException("compressed LOG frame does not decode: zstd says " + e.getMessage());
      }
      if (in.hasRemaining() || dst.position() != raw) {
        throw new ChannelProtocolException("compressed LOG frame decodes to " + dst.position() + " bytes with "
            + in.remaining() + " compressed bytes left over; it declares " + raw);
      }
      return out;
    }

    @Override
    public void close() {
      ctx.close();
    }
  }

  static byte[] grow(byte[] b, int atLeast) {
    return java.util.Arrays.copyOf(b, Math.max(atLeast, b.length * 2));
  }
}
