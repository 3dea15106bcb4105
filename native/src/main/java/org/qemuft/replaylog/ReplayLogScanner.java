package org.qemuft.replaylog;

import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * Incremental scanner for QEMU 7.2's replay log (REPLAY_VERSION 0x00e0200c). Feed it the stream in
 * chunks split anywhere (mid-header, mid-event, mid-field); it reports every whole event to its
 * {@link ReplayEventListener} with its kind, absolute byte range and running instruction count,
 * and tracks {@link #safeEnd()}: the offset up to which the stream may be cut or forwarded.
 *
 * <p>It checks every field it can without QEMU's runtime state (kinds, INPUT sub-types, key and
 * button codes, flags, signs, and lengths against the limits below) and throws {@link
 * ReplayLogException} naming the offset and value on the first thing that cannot be in a log
 * QEMU wrote. It never resynchronises: after an error every further call throws again. After END
 * only one thing may follow, and only in a headerless stream: the 4 version bytes {@code 00 e0 20
 * 0c} that QEMU writes at exit when its log file cannot seek (a pipe), see docs/replay-log.md.
 *
 * <p>Variable-length payloads (frames, chardev data, random bytes, audio samples) are skipped, not
 * buffered: the scanner keeps at most one event's fixed fields (18 bytes). Feeding allocates
 * nothing. Not thread-safe: one feeder at a time.
 */
public final class ReplayLogScanner {
  /** QEMU 7.2's REPLAY_VERSION, the only log version this scanner reads. */
  public static final int REPLAY_VERSION = 0x00e0200c;
  /** Size of the header QEMU writes at the start of a log file: u32 version, u64 reserved. */
  public static final int FILE_HEADER_SIZE = 12;

  /**
   * Largest ASYNC_NET frame accepted. Every 7.2 netdev reads into a NET_BUFSIZE (4096 + 65536)
   * buffer; twice 64 KiB leaves headroom without letting a corrupt length swallow the stream.
   */
  public static final int MAX_NET_FRAME = 128 * 1024;
  /**
   * Largest ASYNC_CHAR_READ, CHAR_READ_ALL or RANDOM payload accepted. Chardev reads are a few KiB
   * and RDRAND draws 8 bytes, but virtio-rng draws as much as the guest's buffer holds, so the
   * limit is generous: payloads are skipped, never buffered, so it costs no memory.
   */
  public static final int MAX_DATA_LENGTH = 16 * 1024 * 1024;
  /** Largest AUDIO_IN sample count accepted (each sample is two u64: 16 MiB of samples). */
  public static final long MAX_AUDIO_IN_SAMPLES = 1L << 20;

  // Kind codes the scanner treats specially (the full list is ReplayEventKind).
  private static final int K_INSTRUCTION = 0;
  private static final int K_INPUT = 5;
  private static final int K_CHAR_READ = 7;
  private static final int K_NET = 9;
  private static final int K_CHAR_WRITE = 22;
  private static final int K_CHAR_READ_ALL = 23;
  private static final int K_CHAR_READ_ALL_ERROR = 24;
  private static final int K_AUDIO_IN = 26;
  private static final int K_RANDOM = 27;
  private static final int K_END = 39;

  // QAPI enum sizes in 7.2 (qapi/ui.json): QKeyCode, InputButton, InputAxis. A value outside
  // them is garbage: QEMU only records values of these enums. (InputEventKind has 4 values and
  // KeyValueKind 2; fixedLength checks those, since the event's length depends on them.)
  private static final int QKEYCODE_COUNT = 151;
  private static final int INPUT_BUTTON_COUNT = 9;
  private static final int INPUT_AXIS_COUNT = 2;

  /** Length of the fixed part of each kind (kind byte included); 0 = not a kind; -1 = INPUT. */
  private static final byte[] FIXED = new byte[256];
  private static final int MAX_FIXED = 18;

  static {
    for (int k = 0; k < ReplayEventKind.CODE_COUNT; k++) {
      FIXED[k] = 1;
    }
    FIXED[K_INSTRUCTION] = 5;
    FIXED[3] = 9; // ASYNC_BH: u64 id
    FIXED[4] = 9; // ASYNC_BH_ONESHOT: u64 id
    FIXED[K_INPUT] = -1;
    FIXED[K_CHAR_READ] = 6; // u8 id, u32 len
    FIXED[8] = 9; // ASYNC_BLOCK: u64 id
    FIXED[K_NET] = 10; // u8 id, u32 flags, u32 len
    FIXED[ReplayEventKind.SHUTDOWN_RESERVED] = 0;
    FIXED[K_CHAR_WRITE] = 9; // u32 res, u32 offset
    FIXED[K_CHAR_READ_ALL] = 5; // u32 len
    FIXED[K_CHAR_READ_ALL_ERROR] = 5; // u32 error
    FIXED[25] = 9; // AUDIO_OUT: u64 played
    FIXED[K_AUDIO_IN] = 17; // u64 recorded, u64 wpos
    FIXED[K_RANDOM] = 9; // u32 ret, u32 len
    FIXED[28] = 9; // CLOCK_HOST: u64
    FIXED[29] = 9; // CLOCK_VIRTUAL_RT: u64
  }

  private static final int HEADER = 0;
  private static final int EVENTS = 1;
  private static final int AFTER_END = 2;

  private final ReplayEventListener listener;
  private final boolean allowVersionTrailer;
  private final boolean allowUnwrittenHeader;

  private int phase;
  /** Absolute offset of the next byte to be fed. */
  private long offset;
  private long safeEnd;
  private long icount;
  private long events;
  private int lastKind = -1;

  // The event (or header) in progress across feeds: its fixed bytes, its start, and how many
  // payload bytes are still to be skipped once the fixed part is complete.
  private final byte[] pend = new byte[MAX_FIXED];
  private int pendLen;
  private long pendStart;
  private boolean pendFixedDone;
  private long pendPayloadLeft;

  private int trailerSeen;
  private long endOffset = -1;
  private ReplayLogException failure;
  private byte[] scratch;

  private ReplayLogScanner(
      ReplayEventListener listener,
      int phase,
      long offset,
      long icount,
      boolean allowVersionTrailer,
      boolean allowUnwrittenHeader) {
    this.listener = Objects.requireNonNull(listener, "listener");
    this.phase = phase;
    this.offset = offset;
    this.safeEnd = offset;
    this.icount = icount;
    this.allowVersionTrailer = allowVersionTrailer;
    this.allowUnwrittenHeader = allowUnwrittenHeader;
  }

  /**
   * A scanner for a log file as QEMU writes it: the 12-byte header, then events from offset 12.
   *
   * @param allowUnwrittenHeader accept an all-zero header. QEMU writes the version only when it
   *     exits, so the file of a QEMU still recording, or killed, starts with 12 zero bytes.
   */
  public static ReplayLogScanner forLogFile(
      ReplayEventListener listener, boolean allowUnwrittenHeader) {
    return new ReplayLogScanner(listener, HEADER, 0, 0, false, allowUnwrittenHeader);
  }

  /**
   * A scanner for a headerless stream of events (what QEMU writes into a pipe, or what the shim
   * ships), whose first byte is at absolute offset {@code startOffset} and starts an event, with
   * {@code startIcount} instructions counted before it. QEMU's 4-byte version trailer after END is
   * accepted.
   */
  public static ReplayLogScanner forStream(
      ReplayEventListener listener, long startOffset, long startIcount) {
    if (startOffset < 0 || startIcount < 0) {
      throw new IllegalArgumentException(
          "start offset and icount must be >= 0, got " + startOffset + " and " + startIcount);
    }
    return new ReplayLogScanner(listener, EVENTS, startOffset, startIcount, true, false);
  }

  /**
   * Scans {@code len} bytes of {@code buf} from {@code off}, the next bytes of the stream.
   *
   * @throws ReplayLogException if they cannot continue a QEMU 7.2 replay log, or if an earlier
   *     call failed
   */
  public void feed(byte[] buf, int off, int len) throws ReplayLogException {
    Objects.checkFromIndexSize(off, len, buf.length);
    if (failure != null) {
      throw stopped();
    }
    long base = offset - off; // absolute offset of buf[i] is base + i
    int limit = off + len;
    int p = off;
    try {
      while (p < limit) {
        if (phase == EVENTS && pendLen == 0) {
          p = scanWhole(buf, p, limit, base);
        } else {
          p = scanPartial(buf, p, limit, base);
        }
      }
    } catch (ReplayLogException e) {
      failure = e;
      throw e;
    } catch (RuntimeException | Error e) {
      failure = new ReplayLogException(offset, "the replay event listener failed: " + e, e);
      throw e;
    }
    offset += len;
  }

  /** Scans the buffer's remaining bytes (heap or direct) and advances its position to its limit. */
  public void feed(ByteBuffer buf) throws ReplayLogException {
    if (buf.hasArray()) {
      int n = buf.remaining();
      feed(buf.array(), buf.arrayOffset() + buf.position(), n);
      buf.position(buf.position() + n);
      return;
    }
    if (scratch == null) {
      scratch = new byte[64 * 1024];
    }
    while (buf.hasRemaining()) {
      int n = Math.min(scratch.length, buf.remaining());
      buf.get(scratch, 0, n);
      feed(scratch, 0, n);
    }
  }

  /** Absolute offset of the next byte to be fed: everything fed so far. */
  public long offset() {
    return offset;
  }

  /**
   * Absolute offset just past the last whole event (or past the file header, or the start offset
   * before any event): the stream can be cut or forwarded up to here.
   */
  public long safeEnd() {
    return safeEnd;
  }

  /** Running instruction count at {@link #safeEnd()}. */
  public long icount() {
    return icount;
  }

  /** Number of whole events seen. */
  public long events() {
    return events;
  }

  /** Kind byte of the last whole event, or -1 if none. */
  public int lastKind() {
    return lastKind;
  }

  /** Whether END has been seen (then nothing but QEMU's version trailer may follow). */
  public boolean endSeen() {
    return phase == AFTER_END;
  }

  /**
   * Whether the bytes fed so far end on a whole event (or a whole header, or a whole version
   * trailer after END), i.e. nothing is pending.
   */
  public boolean atEventBoundary() {
    return switch (phase) {
      case HEADER -> false;
      case EVENTS -> pendLen == 0;
      default -> trailerSeen == 0 || trailerSeen == 4;
    };
  }

  /** Whether an earlier call failed; the scanner then refuses input. */
  public boolean failed() {
    return failure != null;
  }

  // ---- the hot path: whole events inside one chunk ----

  private int scanWhole(byte[] b, int p, int limit, long base) throws ReplayLogException {
    final ReplayEventListener l = listener;
    while (p < limit) {
      int kind = b[p] & 0xff;
      int fixed = FIXED[kind];
      if (fixed == 1) {
        long start = base + p;
        p++;
        emit(l, kind, start, start + 1);
        if (kind == K_END) {
          phase = AFTER_END;
          endOffset = start;
          return p;
        }
        continue;
      }
      int avail = limit - p;
      if (kind == K_INSTRUCTION && avail >= 5) {
        int count = be32(b, p + 1);
        if (count <= 0) {
          throw badInstructionCount(count, base + p);
        }
        icount += count;
        long start = base + p;
        p += 5;
        emit(l, kind, start, start + 5);
        continue;
      }
      if (fixed <= 0) {
        fixed = fixedLength(b, p, avail, base + p);
      }
      if (fixed < 0 || fixed > avail) {
        stashFixed(b, p, limit, base);
        return limit;
      }
      long payload = checkFixed(b, p, base + p);
      if (payload > avail - fixed) {
        stashWithPayload(b, p, fixed, payload - (avail - fixed), base);
        return limit;
      }
      // Not INSTRUCTION: a whole one took the branch above.
      long start = base + p;
      p += fixed + (int) payload;
      emit(l, kind, start, base + p);
    }
    return p;
  }

  private void emit(ReplayEventListener l, int kind, long start, long end) {
    events++;
    safeEnd = end;
    lastKind = kind;
    l.onEvent(kind, start, end, icount);
  }

  private void stashFixed(byte[] b, int p, int limit, long base) {
    int n = limit - p; // < the fixed length, so <= MAX_FIXED
    System.arraycopy(b, p, pend, 0, n);
    pendLen = n;
    pendStart = base + p;
    pendFixedDone = false;
    pendPayloadLeft = 0;
  }

  private void stashWithPayload(byte[] b, int p, int fixed, long payloadLeft, long base) {
    System.arraycopy(b, p, pend, 0, fixed);
    pendLen = fixed;
    pendStart = base + p;
    pendFixedDone = true;
    pendPayloadLeft = payloadLeft;
  }

  private static int be32(byte[] b, int i) {
    return (b[i] << 24) | ((b[i + 1] & 0xff) << 16) | ((b[i + 2] & 0xff) << 8) | (b[i + 3] & 0xff);
  }

  private static long be64(byte[] b, int i) {
    return ((long) be32(b, i) << 32) | (be32(b, i + 4) & 0xffffffffL);
  }

  // ---- the slow path: header, events split across feeds, trailer ----

  private int scanPartial(byte[] b, int p, int limit, long base) throws ReplayLogException {
    if (phase == HEADER) {
      int n = Math.min(FILE_HEADER_SIZE - pendLen, limit - p);
      System.arraycopy(b, p, pend, pendLen, n);
      pendLen += n;
      p += n;
      if (pendLen == FILE_HEADER_SIZE) {
        checkHeader();
        pendLen = 0;
        phase = EVENTS;
        safeEnd = FILE_HEADER_SIZE;
      }
      return p;
    }
    if (phase == AFTER_END) {
      return scanTrailer(b, p, limit, base);
    }
    // An event split across feeds: first complete its fixed part, then skip its payload.
    if (!pendFixedDone) {
      while (true) {
        int fixed = fixedLength(pend, 0, pendLen, pendStart);
        int target = Math.abs(fixed);
        if (fixed > 0 && pendLen == fixed) {
          pendPayloadLeft = checkFixed(pend, 0, pendStart);
          pendFixedDone = true;
          break;
        }
        int n = Math.min(target - pendLen, limit - p);
        System.arraycopy(b, p, pend, pendLen, n);
        pendLen += n;
        p += n;
        if (pendLen < target) {
          return p;
        }
      }
    }
    long skip = Math.min(pendPayloadLeft, limit - p);
    p += (int) skip;
    pendPayloadLeft -= skip;
    if (pendPayloadLeft > 0) {
      return p;
    }
    int kind = pend[0] & 0xff;
    if (kind == K_INSTRUCTION) {
      icount += be32(pend, 1);
    }
    pendLen = 0;
    pendFixedDone = false;
    emit(listener, kind, pendStart, base + p);
    if (kind == K_END) {
      phase = AFTER_END;
      endOffset = pendStart;
    }
    return p;
  }

  private int scanTrailer(byte[] b, int p, int limit, long base) throws ReplayLogException {
    while (p < limit) {
      int v = b[p] & 0xff;
      int expected = (REPLAY_VERSION >>> (24 - 8 * trailerSeen)) & 0xff;
      if (!allowVersionTrailer || trailerSeen == 4 || v != expected) {
        throw new ReplayLogException(
            base + p,
            String.format(
                "byte 0x%02x at offset %d follows the END event at offset %d: END must be the last"
                    + " event%s",
                v,
                base + p,
                endOffset,
                allowVersionTrailer
                    ? " (only QEMU's 4-byte version 00 e0 20 0c may follow it in a stream recorded"
                        + " into a pipe)"
                    : ""));
      }
      trailerSeen++;
      p++;
    }
    return p;
  }

  private void checkHeader() throws ReplayLogException {
    int version = be32(pend, 0);
    if (version == REPLAY_VERSION) {
      return;
    }
    if (version == 0 && be64(pend, 4) == 0) {
      if (allowUnwrittenHeader) {
        return;
      }
      throw new ReplayLogException(
          0,
          "the replay log header has version 0x00000000: QEMU writes the version only when it"
              + " exits, so this log is still being recorded or its QEMU was killed; its events"
              + " can still be scanned by accepting an unwritten header");
    }
    throw new ReplayLogException(
        0,
        String.format(
            "replay log version 0x%08x at offset 0 is not supported: qemu-ft reads only QEMU"
                + " 7.2's version 0x%08x (is this log from another QEMU release, or not a replay"
                + " log?)",
            version, REPLAY_VERSION));
  }

  /**
   * The length of the fixed part of the event starting at {@code b[i]}, or {@code -n} if that
   * depends on bytes not yet available ({@code n > avail} bytes are needed to tell).
   */
  private static int fixedLength(byte[] b, int i, int avail, long abs)
      throws ReplayLogException {
    int kind = b[i] & 0xff;
    int fixed = FIXED[kind];
    if (fixed > 0) {
      return fixed;
    }
    if (fixed == 0) {
      throw unknownKind(kind, abs);
    }
    // ASYNC_INPUT: u32 InputEventKind, then per kind (replay/replay-input.c).
    if (avail < 5) {
      return -5;
    }
    int type = be32(b, i + 1);
    switch (type) {
      case 0: // key: u32 KeyValueKind, then number (u64, u8 down) or qcode (u32, u8 down)
        if (avail < 9) {
          return -9;
        }
        int keyKind = be32(b, i + 5);
        if (keyKind == 0) {
          return 18;
        }
        if (keyKind == 1) {
          return 14;
        }
        throw badField("ASYNC_INPUT", abs, "key value kind", keyKind, abs + 5, "0 (number) or 1 (qcode)");
      case 1: // btn: u32 InputButton, u8 down
        return 10;
      case 2: // rel: u32 InputAxis, u64 value
      case 3: // abs: u32 InputAxis, u64 value
        return 17;
      default:
        throw badField(
            "ASYNC_INPUT", abs, "input event type", type, abs + 1,
            "0..3 (key, btn, rel, abs)");
    }
  }

  /**
   * Checks the fixed part of the event at {@code b[i]} (complete) and returns the length of its
   * variable payload.
   */
  private static long checkFixed(byte[] b, int i, long abs) throws ReplayLogException {
    int kind = b[i] & 0xff;
    switch (kind) {
      case K_INSTRUCTION -> {
        int count = be32(b, i + 1);
        if (count <= 0) {
          throw badInstructionCount(count, abs);
        }
        return 0;
      }
      case K_INPUT -> {
        checkInput(b, i, abs);
        return 0;
      }
      case K_CHAR_READ -> {
        return checkLength("ASYNC_CHAR_READ", b, i, 2, abs, MAX_DATA_LENGTH);
      }
      case K_NET -> {
        int flags = be32(b, i + 2);
        if ((flags & ~1) != 0) {
          throw badField("ASYNC_NET", abs, "flags", flags, abs + 2, "0 or 1 (QEMU_NET_PACKET_FLAG_RAW)");
        }
        return checkLength("ASYNC_NET", b, i, 6, abs, MAX_NET_FRAME);
      }
      case K_CHAR_WRITE -> {
        int written = be32(b, i + 5);
        if (written < 0) {
          throw badField("CHAR_WRITE", abs, "offset", written, abs + 5, "a non-negative int");
        }
        return 0;
      }
      case K_CHAR_READ_ALL -> {
        return checkLength("CHAR_READ_ALL", b, i, 1, abs, MAX_DATA_LENGTH);
      }
      case K_CHAR_READ_ALL_ERROR -> {
        int err = be32(b, i + 1);
        if (err >= 0) {
          throw badField(
              "CHAR_READ_ALL_ERROR", abs, "error", err, abs + 1, "negative (QEMU asserts res < 0)");
        }
        return 0;
      }
      case K_AUDIO_IN -> {
        long recorded = be64(b, i + 1);
        if (recorded < 0 || recorded > MAX_AUDIO_IN_SAMPLES) {
          throw new ReplayLogException(
              abs + 1,
              String.format(
                  "AUDIO_IN event at offset %d: sample count 0x%016x at offset %d exceeds the"
                      + " limit of %d samples",
                  abs, recorded, abs + 1, MAX_AUDIO_IN_SAMPLES));
        }
        return 16 * recorded;
      }
      case K_RANDOM -> {
        return checkLength("RANDOM", b, i, 5, abs, MAX_DATA_LENGTH);
      }
      default -> {
        return 0;
      }
    }
  }

  private static void checkInput(byte[] b, int i, long abs) throws ReplayLogException {
    int type = be32(b, i + 1);
    switch (type) {
      case 0 -> {
        if (be32(b, i + 5) == 0) {
          checkBool(b, i, 17, abs); // number: u64 at +9, down at +17
        } else {
          int qcode = be32(b, i + 9);
          if (qcode < 0 || qcode >= QKEYCODE_COUNT) {
            throw badField("ASYNC_INPUT", abs, "qcode", qcode, abs + 9, "0.." + (QKEYCODE_COUNT - 1));
          }
          checkBool(b, i, 13, abs);
        }
      }
      case 1 -> {
        int button = be32(b, i + 5);
        if (button < 0 || button >= INPUT_BUTTON_COUNT) {
          throw badField("ASYNC_INPUT", abs, "button", button, abs + 5, "0.." + (INPUT_BUTTON_COUNT - 1));
        }
        checkBool(b, i, 9, abs);
      }
      default -> {
        int axis = be32(b, i + 5);
        if (axis < 0 || axis >= INPUT_AXIS_COUNT) {
          throw badField("ASYNC_INPUT", abs, "axis", axis, abs + 5, "0 (x) or 1 (y)");
        }
      }
    }
  }

  private static void checkBool(byte[] b, int i, int at, long abs) throws ReplayLogException {
    int v = b[i + at] & 0xff;
    if (v > 1) {
      throw new ReplayLogException(
          abs + at,
          String.format(
              "ASYNC_INPUT event at offset %d: 'down' byte 0x%02x at offset %d is not a bool (0 or"
                  + " 1)",
              abs, v, abs + at));
    }
  }

  private static long checkLength(
      String name, byte[] b, int i, int at, long abs, int max) throws ReplayLogException {
    long len = be32(b, i + at) & 0xffffffffL;
    if (len > max) {
      throw new ReplayLogException(
          abs + at,
          String.format(
              "%s event at offset %d: length 0x%08x (%d bytes) at offset %d exceeds the %d-byte"
                  + " limit for this event",
              name, abs, len, len, abs + at, max));
    }
    return len;
  }

  private static ReplayLogException unknownKind(int kind, long abs) {
    String why =
        kind == ReplayEventKind.SHUTDOWN_RESERVED
            ? "it is SHUTDOWN with cause SHUTDOWN_CAUSE__MAX, which QEMU never writes"
            : "QEMU 7.2 writes kinds 0..39";
    return new ReplayLogException(
        abs,
        String.format(
            "unknown event kind 0x%02x (%d) at offset %d: %s; the log is corrupt, cut in the"
                + " wrong place, or not a QEMU 7.2 replay log",
            kind, kind, abs, why));
  }

  // QEMU writes an INSTRUCTION event only for a positive difference, computed as an int in
  // replay_advance_current_icount, so 0 and anything above INT_MAX (negative here) are garbage.
  private static ReplayLogException badInstructionCount(int count, long abs) {
    return new ReplayLogException(
        abs + 1,
        String.format(
            "INSTRUCTION event at offset %d: count 0x%08x at offset %d is impossible (QEMU writes"
                + " 1..2147483647)",
            abs, count, abs + 1));
  }

  private static ReplayLogException badField(
      String event, long abs, String field, int value, long at, String allowed) {
    return new ReplayLogException(
        at,
        String.format(
            "%s event at offset %d: %s 0x%08x at offset %d is impossible (must be %s)",
            event, abs, field, value, at, allowed));
  }

  private ReplayLogException stopped() {
    return new ReplayLogException(
        failure.offset(),
        "the replay log scanner stopped at an earlier error and takes no more input: "
            + failure.getMessage(),
        failure);
  }
}
