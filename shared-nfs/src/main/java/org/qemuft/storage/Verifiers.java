package org.qemuft.storage;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.Optional;

/**
 * Exclusive-create verifiers (8 bytes) and where servers keep them. An NFSv3 server stores the
 * verifier of an EXCLUSIVE create in the new file's attributes until the client sets them:
 * nfs-ganesha 4.3 (set_common_verifier) puts bytes 0-3, read as a little-endian number, into the
 * atime seconds and bytes 4-7 into the mtime seconds; the Linux kernel server puts bytes 0-3 into
 * the mtime and 4-7 into the atime, each with the top bit cleared. qemu-ft's verifiers keep both
 * halves below 2^30, so both servers store them intact and they cannot be mistaken for the times
 * of a file written since 2004. The mounted-directory backend stamps them the way ganesha does.
 * Details: docs/shared-storage.md.
 */
final class Verifiers {
  static final int SIZE = 8;
  private static final long HALF_LIMIT = 1L << 30;

  private Verifiers() {}

  /** Refuses a verifier that is not 8 bytes with both little-endian halves below 2^30. */
  static byte[] check(byte[] verifier) {
    if (verifier == null || verifier.length != SIZE) {
      throw new IllegalArgumentException("an exclusive-create verifier has " + SIZE + " bytes, not "
          + (verifier == null ? "none" : verifier.length));
    }
    if (atimeSeconds(verifier) >= HALF_LIMIT || mtimeSeconds(verifier) >= HALF_LIMIT) {
      throw new IllegalArgumentException("exclusive-create verifier " + hex(verifier) + " has a half of 2^30"
          + " or more (bytes 3 and 7 must be below 0x40), which servers may not store intact");
    }
    return verifier;
  }

  /** The atime seconds ganesha stores for {@code v}: bytes 0-3, little-endian. */
  static long atimeSeconds(byte[] v) {
    return le32(v, 0);
  }

  /** The mtime seconds ganesha stores for {@code v}: bytes 4-7, little-endian. */
  static long mtimeSeconds(byte[] v) {
    return le32(v, 4);
  }

  /**
   * The verifier an empty file's times hold, in ganesha's order, or empty if they are not a
   * qemu-ft verifier (either time at or past 2^30 s: a real time).
   */
  static Optional<byte[]> fromTimes(long atimeSeconds, long mtimeSeconds) {
    if (atimeSeconds < 0 || atimeSeconds >= HALF_LIMIT || mtimeSeconds < 0 || mtimeSeconds >= HALF_LIMIT) {
      return Optional.empty();
    }
    byte[] v = new byte[SIZE];
    for (int i = 0; i < 4; i++) {
      v[i] = (byte) (atimeSeconds >>> (8 * i));
      v[4 + i] = (byte) (mtimeSeconds >>> (8 * i));
    }
    return Optional.of(v);
  }

  /** True if {@code stored} is {@code mine} as ganesha keeps it, or with its halves swapped as the Linux server keeps it. */
  static boolean same(byte[] stored, byte[] mine) {
    if (Arrays.equals(stored, mine)) {
      return true;
    }
    return Arrays.equals(stored, 0, 4, mine, 4, 8) && Arrays.equals(stored, 4, 8, mine, 0, 4);
  }

  static String hex(byte[] v) {
    return HexFormat.of().formatHex(v);
  }

  private static long le32(byte[] v, int off) {
    return (v[off] & 0xffL) | (v[off + 1] & 0xffL) << 8 | (v[off + 2] & 0xffL) << 16 | (v[off + 3] & 0xffL) << 24;
  }
}
