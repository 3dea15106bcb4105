package org.qemuft.replaylog;

/**
 * Where a backup's log may end before the go-live tail ({@link ReplayLogEncoder#goLiveTail()}) is
 * appended: the end of the last whole event, except that an idle warp QEMU has opened and not yet
 * closed is left out.
 *
 * <p>Why (docs/go-live.md has the measurements): when the guest idles, a {@code sleep=on} QEMU
 * logs CHECKPOINT_CLOCK_WARP_START and remembers in {@code timers_state.vm_clock_warp_start} the
 * QEMU_CLOCK_VIRTUAL_RT time the idle period began; the next CHECKPOINT_CLOCK_WARP_ACCOUNT (the vCPU
 * waking) adds the idle time to the guest clock and forgets it. A replaying backup takes that start
 * time from the primary's log, but its own QEMU_CLOCK_VIRTUAL_RT is its own running time. If the
 * backup is stopped and snapshotted between the two, the QEMU that continues from the snapshot
 * adds (its clock − the primary's start time) to the guest clock at its first vCPU pass
 * ({@code icount_account_warp_timer} → {@code icount_warp_rt}): the guest's clock steps by the
 * difference between the two hosts' running times, forwards or backwards, and a step backwards
 * leaves the guest asleep until real time catches up. Between the two checkpoints the guest
 * executes nothing (its vCPU is halted), so leaving that stretch out loses no guest execution,
 * only host-side events of the idle period (clock reads, timer checkpoints, and any frame or
 * completion that arrived while the guest slept, which is then lost as a network loss is).
 *
 * <p>Feed it every event of the stream (as a {@link ReplayEventListener} of the scanner) from the
 * stream's start; {@link #end()} and {@link #icount()} say where to cut. Not thread-safe.
 */
public final class GoLiveBoundary implements ReplayEventListener {
  private long end;
  private long icount;
  private boolean warpOpen;
  private long warpStart;
  private long warpStartIcount;

  /** Starts at a stream offset where no warp is open (a log's start, or a boundary of this class). */
  public GoLiveBoundary(long startOffset, long startIcount) {
    this.end = startOffset;
    this.icount = startIcount;
  }

  @Override
  public void onEvent(int kind, long start, long eventEnd, long icountAfter) {
    if (kind == ReplayEventKind.CHECKPOINT_CLOCK_WARP_START.code()) {
      if (!warpOpen) {
        warpOpen = true;
        warpStart = start;
        warpStartIcount = icountAfter;
      }
    } else if (kind == ReplayEventKind.CHECKPOINT_CLOCK_WARP_ACCOUNT.code()) {
      warpOpen = false;
    }
    end = eventEnd;
    icount = icountAfter;
  }

  /** The stream offset up to which the backup may be fed before the tail. */
  public long end() {
    return warpOpen ? warpStart : end;
  }

  /** The instruction count at {@link #end()}. */
  public long icount() {
    return warpOpen ? warpStartIcount : icount;
  }

  /** Whether events after {@link #end()} are held back because they are inside an open warp. */
  public boolean holdsBackOpenWarp() {
    return warpOpen;
  }
}
