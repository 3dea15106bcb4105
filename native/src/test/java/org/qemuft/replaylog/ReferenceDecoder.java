package org.qemuft.replaylog;

import java.util.ArrayList;
import java.util.List;

/**
 * A deliberately plain, whole-buffer decoder of the same format and rules (docs/replay-log.md),
 * used as the oracle for the incremental scanner: no chunking, no state machine, a cursor that
 * reads fields and gives up at the first thing that is wrong or missing.
 */
final class ReferenceDecoder {
  enum Status { COMPLETE, TRUNCATED, ERROR }

  record Result(List<Ev> events, Status status, long errorOffset) {}

  private final byte[] d;
  private final long base;
  private int p;

  private ReferenceDecoder(byte[] d, long base) {
    this.d = d;
    this.base = base;
  }

  private static final class Missing extends Exception {
    Missing() {
      super(null, null, false, false);
    }
  }

  private static final class Bad extends Exception {
    final long at;

    Bad(long at) {
      super(null, null, false, false);
      this.at = at;
    }
  }

  /** Decodes a headerless stream starting at absolute offset {@code base}. */
  static Result decodeStream(byte[] d, long base, long icount) {
    return new ReferenceDecoder(d, base).run(icount, true);
  }

  /** Decodes a file with its 12-byte header. */
  static Result decodeFile(byte[] d) {
    ReferenceDecoder r = new ReferenceDecoder(d, 0);
    if (d.length < 12) {
      return new Result(List.of(), Status.TRUNCATED, -1);
    }
    if (!(d[0] == 0 && (d[1] & 0xff) == 0xe0 && d[2] == 0x20 && d[3] == 0x0c)) {
      return new Result(List.of(), Status.ERROR, 0);
    }
    r.p = 12;
    return r.run(0, false);
  }

  private int u8() throws Missing {
    if (p >= d.length) {
      throw new Missing();
    }
    return d[p++] & 0xff;
  }

  private long u32() throws Missing {
    long v = 0;
    for (int i = 0; i < 4; i++) {
      v = (v << 8) | u8();
    }
    return v;
  }

  private long u64() throws Missing {
    return (u32() << 32) | u32();
  }

  private void skip(long n) throws Missing {
    if (d.length - p < n) {
      throw new Missing();
    }
    p += (int) n;
  }

  private long field() {
    return base + p;
  }

  private void array(long max) throws Missing, Bad {
    long at = field();
    long len = u32();
    if (len > max) {
      throw new Bad(at);
    }
    skip(len);
  }

  private Result run(long icount, boolean trailerAllowed) {
    List<Ev> events = new ArrayList<>();
    while (p < d.length) {
      int start = p;
      try {
        int kind = u8();
        switch (kind) {
          case 0 -> {
            long at = field();
            long c = u32();
            if (c == 0 || c > Integer.MAX_VALUE) {
              throw new Bad(at);
            }
            icount += c;
          }
          case 3, 4, 8, 25, 28, 29 -> u64();
          case 5 -> {
            // The scanner needs the type (and a key's value kind) to know the length, so those
            // are checked as soon as read; the other fields once the fixed part is complete.
            long at = field();
            long type = u32();
            if (type == 0) {
              long kat = field();
              long keyKind = u32();
              if (keyKind == 0) {
                u64();
                bool(u8(), base + p - 1);
              } else if (keyKind == 1) {
                long qcode = u32();
                int down = u8();
                if (qcode > 150) {
                  throw new Bad(base + p - 5);
                }
                bool(down, base + p - 1);
              } else {
                throw new Bad(kat);
              }
            } else if (type == 1) {
              long button = u32();
              int down = u8();
              if (button > 8) {
                throw new Bad(base + p - 5);
              }
              bool(down, base + p - 1);
            } else if (type == 2 || type == 3) {
              long axis = u32();
              u64();
              if (axis > 1) {
                throw new Bad(base + p - 12);
              }
            } else {
              throw new Bad(at);
            }
          }
          case 7 -> {
            u8();
            array(ReplayLogScanner.MAX_DATA_LENGTH);
          }
          case 9 -> {
            u8();
            long fat = field();
            long flags = u32();
            long lat = field();
            long len = u32();
            if (flags > 1) {
              throw new Bad(fat);
            }
            if (len > ReplayLogScanner.MAX_NET_FRAME) {
              throw new Bad(lat);
            }
            skip(len);
          }
          case 22 -> {
            u32();
            long oat = field();
            if (u32() > Integer.MAX_VALUE) {
              throw new Bad(oat);
            }
          }
          case 23 -> array(ReplayLogScanner.MAX_DATA_LENGTH);
          case 24 -> {
            long eat = field();
            if (u32() <= Integer.MAX_VALUE) {
              throw new Bad(eat);
            }
          }
          case 26 -> {
            long rat = field();
            long n = u64();
            u64();
            if (n < 0 || n > ReplayLogScanner.MAX_AUDIO_IN_SAMPLES) {
              throw new Bad(rat);
            }
            skip(16 * n);
          }
          case 27 -> {
            u32();
            array(ReplayLogScanner.MAX_DATA_LENGTH);
          }
          default -> {
            if (kind >= 40 || kind == 21) {
              throw new Bad(base + start);
            }
          }
        }
        events.add(new Ev(kind, base + start, base + p, icount));
        if (kind == 39) {
          return afterEnd(events, trailerAllowed);
        }
      } catch (Missing e) {
        return new Result(events, Status.TRUNCATED, -1);
      } catch (Bad e) {
        return new Result(events, Status.ERROR, e.at);
      }
    }
    return new Result(events, Status.COMPLETE, -1);
  }

  private static void bool(int v, long at) throws Bad {
    if (v > 1) {
      throw new Bad(at);
    }
  }

  private Result afterEnd(List<Ev> events, boolean trailerAllowed) {
    byte[] trailer = {0x00, (byte) 0xe0, 0x20, 0x0c};
    int i = 0;
    while (p < d.length) {
      if (!trailerAllowed || i == 4 || d[p] != trailer[i]) {
        return new Result(events, Status.ERROR, base + p);
      }
      i++;
      p++;
    }
    return new Result(events, i == 0 || i == 4 ? Status.COMPLETE : Status.TRUNCATED, -1);
  }
}
