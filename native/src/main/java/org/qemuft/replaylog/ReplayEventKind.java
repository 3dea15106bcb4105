package org.qemuft.replaylog;

/**
 * The event kinds of QEMU 7.2's replay log (replay/replay-internal.h, {@code enum ReplayEvents},
 * REPLAY_VERSION 0x00e0200c), one constant per kind byte that QEMU writes.
 *
 * <p>Code 21 ({@code EVENT_SHUTDOWN + SHUTDOWN_CAUSE__MAX}) is inside QEMU's shutdown range but
 * stands for no cause; QEMU never writes it, so it has no constant and the scanner rejects it.
 */
public enum ReplayEventKind {
  INSTRUCTION(0),
  INTERRUPT(1),
  EXCEPTION(2),
  ASYNC_BH(3),
  ASYNC_BH_ONESHOT(4),
  ASYNC_INPUT(5),
  ASYNC_INPUT_SYNC(6),
  ASYNC_CHAR_READ(7),
  ASYNC_BLOCK(8),
  ASYNC_NET(9),
  SHUTDOWN_NONE(10),
  SHUTDOWN_HOST_ERROR(11),
  SHUTDOWN_HOST_QMP_QUIT(12),
  SHUTDOWN_HOST_QMP_SYSTEM_RESET(13),
  SHUTDOWN_HOST_SIGNAL(14),
  SHUTDOWN_HOST_UI(15),
  SHUTDOWN_GUEST_SHUTDOWN(16),
  SHUTDOWN_GUEST_RESET(17),
  SHUTDOWN_GUEST_PANIC(18),
  SHUTDOWN_SUBSYSTEM_RESET(19),
  SHUTDOWN_SNAPSHOT_LOAD(20),
  CHAR_WRITE(22),
  CHAR_READ_ALL(23),
  CHAR_READ_ALL_ERROR(24),
  AUDIO_OUT(25),
  AUDIO_IN(26),
  RANDOM(27),
  CLOCK_HOST(28),
  CLOCK_VIRTUAL_RT(29),
  CHECKPOINT_CLOCK_WARP_START(30),
  CHECKPOINT_CLOCK_WARP_ACCOUNT(31),
  CHECKPOINT_RESET_REQUESTED(32),
  CHECKPOINT_SUSPEND_REQUESTED(33),
  CHECKPOINT_CLOCK_VIRTUAL(34),
  CHECKPOINT_CLOCK_HOST(35),
  CHECKPOINT_CLOCK_VIRTUAL_RT(36),
  CHECKPOINT_INIT(37),
  CHECKPOINT_RESET(38),
  END(39);

  /** Number of kind codes QEMU 7.2 defines ({@code EVENT_COUNT}); valid codes are below it. */
  public static final int CODE_COUNT = 40;

  static final int SHUTDOWN_FIRST = 10;
  /** {@code EVENT_SHUTDOWN + SHUTDOWN_CAUSE__MAX}: in QEMU's range, but no cause. */
  static final int SHUTDOWN_RESERVED = 21;

  private static final ReplayEventKind[] BY_CODE = new ReplayEventKind[CODE_COUNT];

  static {
    for (ReplayEventKind k : values()) {
      BY_CODE[k.code] = k;
    }
  }

  private final int code;

  ReplayEventKind(int code) {
    this.code = code;
  }

  /** The kind byte as it appears in the log. */
  public int code() {
    return code;
  }

  /**
   * The kind for a kind byte, as the scanner reports it to listeners.
   *
   * @throws IllegalArgumentException if QEMU 7.2 never writes {@code code}
   */
  public static ReplayEventKind of(int code) {
    ReplayEventKind k = code >= 0 && code < CODE_COUNT ? BY_CODE[code] : null;
    if (k == null) {
      throw new IllegalArgumentException(
          "no QEMU 7.2 replay event has kind code " + code + " (valid: 0..20, 22..39)");
    }
    return k;
  }

  /** Whether this is one of the SHUTDOWN kinds (a shutdown request with its cause). */
  public boolean isShutdown() {
    return code >= SHUTDOWN_FIRST && code < SHUTDOWN_RESERVED;
  }

  /**
   * Whether this is a shutdown the guest itself requested: guest-shutdown (power-off),
   * guest-reset or guest-panic. Under {@code -no-reboot}, which every QEMU qemu-ft starts has,
   * each of them ends the guest. QEMU 7.2 logs such a request as the SHUTDOWN event alone, without
   * first logging the instructions executed since the previous event ({@code
   * replay_shutdown_request}, replay/replay.c), so a recording's final instruction count lies a
   * little past the log's count at this event (docs/pair.md, "When the guest powers off").
   */
  public boolean isGuestPowerOff() {
    return this == SHUTDOWN_GUEST_SHUTDOWN || this == SHUTDOWN_GUEST_RESET
        || this == SHUTDOWN_GUEST_PANIC;
  }

  /**
   * For a SHUTDOWN kind, QEMU's {@code ShutdownCause} as QMP spells it ("host-qmp-quit").
   *
   * @throws IllegalStateException if this is not a SHUTDOWN kind
   */
  public String shutdownCause() {
    if (!isShutdown()) {
      throw new IllegalStateException(this + " is not a SHUTDOWN event kind");
    }
    return name().substring("SHUTDOWN_".length()).toLowerCase(java.util.Locale.ROOT).replace('_', '-');
  }
}
