package org.qemuft.controller.channel;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The wire format as docs/channel.md describes it, written apart from the implementation so that
 * hostile test peers speak the documented protocol, not whatever the code happens to do.
 */
final class TestFrames {
  static final int HEADER = 36;
  static final int MAGIC = 0x51465443;
  static final int HELLO = 1;
  static final int AUTH = 2;
  static final int LOG = 3;
  static final int ACK = 4;
  static final int HEARTBEAT = 5;
  static final int GOODBYE = 6;
  static final int PRIMARY = 1;
  static final int BACKUP = 2;

  record Frame(int type, int flags, long seq, long offset, byte[] payload) {}

  private TestFrames() {}

  static byte[] frame(int type, int flags, long seq, long offset, byte[] payload) {
    return frame(MAGIC, 1, type, flags, seq, offset, payload.length, payload);
  }

  /** A frame with every header field chosen; both CRCs are computed over what is written. */
  static byte[] frame(int magic, int version, int type, int flags, long seq, long offset, int length, byte[] payload) {
    ByteBuffer b = ByteBuffer.allocate(HEADER + payload.length);
    b.putInt(magic).put((byte) version).put((byte) type).putShort((short) flags).putLong(seq).putLong(offset).putInt(length);
    CRC32C h = new CRC32C();
    h.update(b.array(), 0, 28);
    b.putInt((int) h.getValue());
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, 28);
    c.update(payload);
    b.putInt((int) c.getValue());
    b.put(payload);
    return b.array();
  }

  static byte[] hello(int role, String pairId, long epoch, byte[] nonce) {
    byte[] id = pairId.getBytes(StandardCharsets.US_ASCII);
    return ByteBuffer.allocate(2 + id.length + 8 + 32).put((byte) role).put((byte) id.length).put(id)
        .putLong(epoch).put(nonce).array();
  }

  /** HMAC-SHA256(secret, "qemu-ft channel v1 proof" 00 role idLen id epoch nonceP nonceB resume). */
  static byte[] proof(byte[] secret, int role, String pairId, long epoch, byte[] nonceP, byte[] nonceB, long resume) {
    try {
      byte[] id = pairId.getBytes(StandardCharsets.US_ASCII);
      ByteArrayOutputStream m = new ByteArrayOutputStream();
      m.writeBytes("qemu-ft channel v1 proof".getBytes(StandardCharsets.US_ASCII));
      m.write(0);
      m.write(role);
      m.write(id.length);
      m.writeBytes(id);
      m.writeBytes(ByteBuffer.allocate(8).putLong(epoch).array());
      m.writeBytes(nonceP);
      m.writeBytes(nonceB);
      m.writeBytes(ByteBuffer.allocate(8).putLong(resume).array());
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret, "HmacSHA256"));
      return mac.doFinal(m.toByteArray());
    } catch (java.security.GeneralSecurityException e) {
      throw new AssertionError(e);
    }
  }

  /** Splits bytes into frames by their length fields; stops at an incomplete or alien frame. */
  static List<Frame> parse(byte[] bytes) {
    List<Frame> out = new ArrayList<>();
    ByteBuffer b = ByteBuffer.wrap(bytes);
    while (b.remaining() >= HEADER) {
      int start = b.position();
      if (b.getInt(start) != MAGIC) {
        break;
      }
      int type = b.get(start + 5) & 0xff;
      int flags = b.getShort(start + 6) & 0xffff;
      long seq = b.getLong(start + 8);
      long offset = b.getLong(start + 16);
      int len = b.getInt(start + 24);
      if (len < 0 || b.remaining() < HEADER + len) {
        break;
      }
      byte[] p = new byte[len];
      b.position(start + HEADER);
      b.get(p);
      out.add(new Frame(type, flags, seq, offset, p));
    }
    return out;
  }

  /** Where each whole frame in {@code bytes} starts and ends. */
  static List<int[]> bounds(byte[] bytes) {
    List<int[]> out = new ArrayList<>();
    ByteBuffer b = ByteBuffer.wrap(bytes);
    int pos = 0;
    while (bytes.length - pos >= HEADER && b.getInt(pos) == MAGIC) {
      int len = b.getInt(pos + 24);
      if (len < 0 || bytes.length - pos < HEADER + len) {
        break;
      }
      out.add(new int[] {pos, pos + HEADER + len});
      pos += HEADER + len;
    }
    return out;
  }
}
