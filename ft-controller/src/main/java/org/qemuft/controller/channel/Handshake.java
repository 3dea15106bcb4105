package org.qemuft.controller.channel;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The handshake's payloads and proofs (docs/channel.md, "Handshake"). Both ends send HELLO
 * (role, pair id, epoch, a fresh 32-byte nonce) as soon as TCP connects. The primary checks the
 * backup's HELLO and sends AUTH with its proof; the backup checks that proof and only then sends
 * its own AUTH, with its proof and its resume offset (in the header's offset field). A proof is
 * HMAC-SHA256 under the shared secret over a label, the prover's role, the pair id, the epoch,
 * both nonces (primary's first) and the resume offset (0 in the primary's proof): a proof made
 * for one connection fails on any other (fresh nonces), and one made by the backup can never pass
 * for the primary's (the role is inside), so reflected and replayed proofs fail.
 */
final class Handshake {
  static final int ROLE_PRIMARY = 1;
  static final int ROLE_BACKUP = 2;
  static final int NONCE = 32;
  static final int PROOF = 32;
  static final byte[] LABEL = "qemu-ft channel v1 proof".getBytes(StandardCharsets.US_ASCII);

  private static final SecureRandom RANDOM = new SecureRandom();

  private Handshake() {}

  static String roleName(int role) {
    return switch (role) {
      case ROLE_PRIMARY -> "primary";
      case ROLE_BACKUP -> "backup";
      default -> "role " + role;
    };
  }

  static byte[] nonce() {
    byte[] n = new byte[NONCE];
    RANDOM.nextBytes(n);
    return n;
  }

  /** A HELLO payload: u8 role, u8 pair id length, pair id (ASCII), u64 epoch, 32-byte nonce. */
  static byte[] hello(int role, ChannelSettings s, byte[] nonce) {
    byte[] id = s.pairIdBytes();
    return ByteBuffer.allocate(2 + id.length + 8 + NONCE)
        .put((byte) role).put((byte) id.length).put(id).putLong(s.epoch()).put(nonce).array();
  }

  record Hello(int role, String pairId, long epoch, byte[] nonce) {}

  /** Parses a HELLO payload; throws naming what is malformed. */
  static Hello parseHello(byte[] p, int len) throws ChannelAuthException {
    if (len < 2) {
      throw new ChannelAuthException("its HELLO is " + len + " bytes, too short to hold a role and a pair id");
    }
    int role = p[0] & 0xff;
    int idLen = p[1] & 0xff;
    if (len != 2 + idLen + 8 + NONCE) {
      throw new ChannelAuthException("its HELLO is " + len + " bytes; with a pair id of " + idLen
          + " bytes it should be " + (2 + idLen + 8 + NONCE));
    }
    ByteBuffer b = ByteBuffer.wrap(p, 2, len - 2);
    byte[] id = new byte[idLen];
    b.get(id);
    long epoch = b.getLong();
    byte[] nonce = new byte[NONCE];
    b.get(nonce);
    return new Hello(role, printable(id, idLen), epoch, nonce);
  }

  /** HMAC-SHA256(secret, LABEL 0x00 role u8 idLen id u64 epoch nonceP nonceB u64 resume). */
  static byte[] proof(byte[] secret, int proverRole, byte[] pairId, long epoch, byte[] primaryNonce,
      byte[] backupNonce, long resumeOffset) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret, "HmacSHA256"));
      mac.update(LABEL);
      mac.update((byte) 0);
      mac.update((byte) proverRole);
      mac.update((byte) pairId.length);
      mac.update(pairId);
      mac.update(ByteBuffer.allocate(8).putLong(epoch).array());
      mac.update(primaryNonce);
      mac.update(backupNonce);
      mac.update(ByteBuffer.allocate(8).putLong(resumeOffset).array());
      return mac.doFinal();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is missing from this JDK", e);
    }
  }

  /** Constant-time comparison of a received proof with the expected one. */
  static boolean proofMatches(byte[] expected, byte[] received, int len) {
    if (len != PROOF) {
      return false;
    }
    byte[] r = java.util.Arrays.copyOf(received, PROOF);
    return MessageDigest.isEqual(expected, r);
  }

  /** Peer-supplied bytes made safe for a log line: printable ASCII, the rest as '?'. */
  static String printable(byte[] b, int len) {
    StringBuilder sb = new StringBuilder(len);
    for (int i = 0; i < len; i++) {
      int c = b[i] & 0xff;
      sb.append(c >= 0x20 && c < 0x7f ? (char) c : '?');
    }
    return sb.toString();
  }
}
