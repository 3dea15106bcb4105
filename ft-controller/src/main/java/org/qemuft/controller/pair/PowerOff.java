package org.qemuft.controller.pair;

import org.qemuft.replaylog.ReplayEventKind;

/**
 * The guest's end, as both controllers see it in the log.
 *
 * <p>QEMU 7.2 logs a guest's power-off (or reset or panic, which end the VM under -no-reboot) as
 * a SHUTDOWN event written alone, without first logging the instructions executed since the
 * previous event (replay_shutdown_request, replay/replay.c). The primary's vCPU runs on for a
 * while before the VM pauses, and those instructions reach the log later, if at all. So the one
 * point both sides can agree on is the SHUTDOWN event itself: its icount in the log is where the
 * recording says the guest asked to stop, and a backup that is fed nothing after that event
 * pauses (-action shutdown=pause) at exactly that icount. The backup's controller therefore holds
 * back everything after it, and both controllers report the icount at that point.
 */
final class PowerOff {
  private PowerOff() {}

  static boolean isGuestShutdown(int kind) {
    return kind == ReplayEventKind.SHUTDOWN_GUEST_SHUTDOWN.code()
        || kind == ReplayEventKind.SHUTDOWN_GUEST_RESET.code()
        || kind == ReplayEventKind.SHUTDOWN_GUEST_PANIC.code();
  }
}
