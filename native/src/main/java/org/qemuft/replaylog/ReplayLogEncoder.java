package org.qemuft.replaylog;

import java.nio.ByteBuffer;

/**
 * Encodes the few replay-log pieces the controller writes itself, in QEMU 7.2's format
 * (big-endian, see docs/replay-log.md). Only bytes: where they go is the caller's business.
 */
public final class ReplayLogEncoder {
  /** Largest count one INSTRUCTION event may carry (QEMU keeps it in an int). */
  public static final int MAX_INSTRUCTION_COUNT = Integer.MAX_VALUE;

  private static final int INSTRUCTION_SIZE = 5;

  private ReplayLogEncoder() {}

  /** The 12-byte header of a log file: u32 REPLAY_VERSION, u64 reserved (zero). */
  public static byte[] fileHeader() {
    return ByteBuffer.allocate(ReplayLogScanner.FILE_HEADER_SIZE)
        .putInt(ReplayLogScanner.REPLAY_VERSION)
        .putLong(0)
        .array();
  }

  /** One INSTRUCTION event: kind 0, u32 count. */
  public static byte[] instruction(int count) {
    checkCount(count);
    return ByteBuffer.allocate(INSTRUCTION_SIZE).put((byte) 0).putInt(count).array();
  }

  /**
   * The go-live tail: appended at a whole-event boundary of what a replaying QEMU has been fed, it
   * makes that QEMU stop cleanly so it can be snapshotted and continued in record mode.
   *
   * <p>It is one SHUTDOWN event with the given cause (QEMU raises the shutdown request as soon as
   * replay reaches it; with {@code -action shutdown=pause} the VM pauses), then {@code
   * repetitions} INSTRUCTION events of {@code instructionsPerEvent} each. The instructions keep the
   * vCPU supplied while the stop takes effect: a replaying vCPU that runs out of log blocks on the
   * read while holding the replay lock, and the stop never happens. The sequence that worked here
   * (shared notes, "Going live") was cause host-qmp-quit and INSTRUCTION events of 100000; the VM
   * stopped about 180 instructions after the SHUTDOWN. Smaller counts bound how far the guest runs
   * past the boundary if the stop is slow; more repetitions give the stop more time.
   *
   * @param shutdown a SHUTDOWN kind, e.g. {@link ReplayEventKind#SHUTDOWN_HOST_QMP_QUIT}
   * @param instructionsPerEvent 1..{@link #MAX_INSTRUCTION_COUNT}
   * @param repetitions 1..1048576
   */
  public static byte[] goLiveTail(
      ReplayEventKind shutdown, int instructionsPerEvent, int repetitions) {
    if (!shutdown.isShutdown()) {
      throw new IllegalArgumentException(
          "the go-live tail starts with a SHUTDOWN event, not " + shutdown);
    }
    checkCount(instructionsPerEvent);
    if (repetitions < 1 || repetitions > 1 << 20) {
      throw new IllegalArgumentException(
          "go-live tail repetitions must be 1..1048576, got " + repetitions);
    }
    ByteBuffer out = ByteBuffer.allocate(1 + INSTRUCTION_SIZE * repetitions);
    out.put((byte) shutdown.code());
    for (int i = 0; i < repetitions; i++) {
      out.put((byte) 0).putInt(instructionsPerEvent);
    }
    return out.array();
  }

  private static void checkCount(int count) {
    if (count < 1) {
      throw new IllegalArgumentException(
          "an INSTRUCTION event carries 1.." + MAX_INSTRUCTION_COUNT + " instructions, got "
              + count + " (QEMU never replays a count of 0 or above INT_MAX)");
    }
  }
}
