package org.qemuft.controller.channel;

import java.util.HexFormat;
import java.util.zip.CRC32C;

/**
 * The logging channel's frame format (docs/channel.md): a 36-byte header, big-endian, then the
 * payload.
 *
 * <pre>
 *  0  u32 magic   0x51465443 "QFTC"
 *  4  u8  version 1
 *  5  u8  type    1 HELLO, 2 AUTH, 3 LOG, 4 ACK, 5 HEARTBEAT, 6 GOODBYE
 *  6  u16 flags   LOG: bit 0 COMPRESSED; GOODBYE: bit 1 RESET; every other bit is 0
 *  8  u64 seq     0, 1, 2, ... per connection and direction
 * 16  u64 offset  LOG: stream offset of the payload's first byte; ACK: held up to;
 *                 AUTH from the backup: its resume offset; otherwise 0
 * 24  u32 length  payload bytes on the wire
 * 28  u32 hcrc    CRC32C over bytes 0..27
 * 32  u32 crc     CRC32C over bytes 0..27, then the payload
 * </pre>
 *
 * <p>The header CRC is checked before the length is believed: a damaged length would otherwise
 * make the receiver wait for bytes that never come, a stall that looks like a dead peer.
 */
final class Wire {
  static final int MAGIC = 0x51465443;
  static final int VERSION = 1;
  static final int HEADER = 36;

  static final int HELLO = 1;
  static final int AUTH = 2;
  static final int LOG = 3;
  static final int ACK = 4;
  static final int HEARTBEAT = 5;
  static final int GOODBYE = 6;

  static final int FLAG_COMPRESSED = 1;
  static final int FLAG_RESET = 2;

  /** Largest LOG payload before compression (see {@link LogChannel#MAX_LOG_BYTES}). */
  static final int MAX_LOG_BYTES = 17 << 20;
  /**
   * Largest payload on the wire: a LOG frame's events, or their compressed form (a 4-byte length
   * plus zstd's output, which for incompressible input is a little larger than the input).
   */
  static final int MAX_PAYLOAD = MAX_LOG_BYTES + (1 << 20);
  /** Largest payload accepted before authentication: HELLO and AUTH are small. */
  static final int MAX_HANDSHAKE_PAYLOAD = 1024;
  /** Largest GOODBYE reason, in bytes of UTF-8. */
  static final int MAX_REASON = 1024;
  /** ACK payload: u64 replayed up to, u64 replay icount. */
  static final int ACK_PAYLOAD = 16;

  private Wire() {}

  static String typeName(int type) {
    return switch (type) {
      case HELLO -> "HELLO";
      case AUTH -> "AUTH";
      case LOG -> "LOG";
      case ACK -> "ACK";
      case HEARTBEAT -> "HEARTBEAT";
      case GOODBYE -> "GOODBYE";
      default -> "type " + type;
    };
  }

  /** "a LOG", "an AUTH", for messages. */
  static String withArticle(int type) {
    String n = typeName(type);
    return (type == AUTH || type == ACK ? "an " : "a ") + n;
  }

  /** Writes a header into {@code b[0..35]}, CRCs included, for a payload in {@code b[36..]}. */
  static void header(byte[] b, int type, int flags, long seq, long offset, int length) {
    putInt(b, 0, MAGIC);
    b[4] = (byte) VERSION;
    b[5] = (byte) type;
    b[6] = (byte) (flags >>> 8);
    b[7] = (byte) flags;
    putLong(b, 8, seq);
    putLong(b, 16, offset);
    putInt(b, 24, length);
    putInt(b, 28, headerCrc(b));
    putInt(b, 32, crc(b, b, HEADER, length));
  }

  /** CRC32C over the header's first 28 bytes. */
  static int headerCrc(byte[] h) {
    CRC32C c = new CRC32C();
    c.update(h, 0, 28);
    return (int) c.getValue();
  }

  /** CRC32C over the header's first 28 bytes and the payload {@code payload[from..from+length)}. */
  static int crc(byte[] header, byte[] payload, int from, int length) {
    CRC32C c = new CRC32C();
    c.update(header, 0, 28);
    c.update(payload, from, length);
    return (int) c.getValue();
  }

  /**
   * Checks a received header's fixed fields; returns null if they are well-formed, else what is
   * wrong with it (the CRC can be checked only once the payload is in).
   */
  static String checkHeader(byte[] h, int maxPayload) {
    int magic = getInt(h, 0);
    if (magic != MAGIC) {
      return "bad magic " + hex(h, 0, 4) + " (expected 51 46 54 43 \"QFTC\"): not a qemu-ft channel frame"
          + describeForeign(h);
    }
    int version = h[4] & 0xff;
    if (version != VERSION) {
      return "protocol version " + version + ", this controller speaks version " + VERSION
          + " (are both hosts running the same qemu-ft release?)";
    }
    int hcrc = headerCrc(h);
    if (hcrc != getInt(h, 28)) {
      return String.format("header CRC32C mismatch: computed %08x, the header carries %08x; the header was"
          + " damaged on the way (its fields cannot be trusted)", hcrc, getInt(h, 28));
    }
    int type = h[5] & 0xff;
    if (type < HELLO || type > GOODBYE) {
      return "unknown frame type " + type;
    }
    int flags = ((h[6] & 0xff) << 8) | (h[7] & 0xff);
    int allowed = type == LOG ? FLAG_COMPRESSED : type == GOODBYE ? FLAG_RESET : 0;
    if ((flags & ~allowed) != 0) {
      return "flags 0x" + Integer.toHexString(flags) + " not allowed on " + typeName(type);
    }
    long length = getInt(h, 24) & 0xffffffffL;
    if (length > maxPayload) {
      return typeName(type) + " frame says its payload is " + length + " bytes, more than the "
          + maxPayload + " allowed" + (maxPayload == MAX_HANDSHAKE_PAYLOAD ? " before authentication" : "");
    }
    return null;
  }

  /** Helps an operator recognise what connected: a web client, TLS, SSH. */
  private static String describeForeign(byte[] h) {
    String start = new String(h, 0, 4, java.nio.charset.StandardCharsets.ISO_8859_1);
    if (start.matches("GET |POST|HEAD|PUT |HTTP")) {
      return " (it looks like HTTP)";
    }
    if (start.startsWith("SSH-")) {
      return " (it looks like SSH)";
    }
    if (h[0] == 0x16 && h[1] == 0x03) {
      return " (it looks like a TLS handshake)";
    }
    return "";
  }

  static int type(byte[] h) {
    return h[5] & 0xff;
  }

  static int flags(byte[] h) {
    return ((h[6] & 0xff) << 8) | (h[7] & 0xff);
  }

  static long seq(byte[] h) {
    return getLong(h, 8);
  }

  static long offset(byte[] h) {
    return getLong(h, 16);
  }

  static int length(byte[] h) {
    return getInt(h, 24);
  }

  static int storedCrc(byte[] h) {
    return getInt(h, 32);
  }

  static void putInt(byte[] b, int at, int v) {
    b[at] = (byte) (v >>> 24);
    b[at + 1] = (byte) (v >>> 16);
    b[at + 2] = (byte) (v >>> 8);
    b[at + 3] = (byte) v;
  }

  static void putLong(byte[] b, int at, long v) {
    putInt(b, at, (int) (v >>> 32));
    putInt(b, at + 4, (int) v);
  }

  static int getInt(byte[] b, int at) {
    return ((b[at] & 0xff) << 24) | ((b[at + 1] & 0xff) << 16) | ((b[at + 2] & 0xff) << 8) | (b[at + 3] & 0xff);
  }

  static long getLong(byte[] b, int at) {
    return ((long) getInt(b, at) << 32) | (getInt(b, at + 4) & 0xffffffffL);
  }

  static String hex(byte[] b, int from, int n) {
    return HexFormat.ofDelimiter(" ").formatHex(b, from, from + n);
  }
}
