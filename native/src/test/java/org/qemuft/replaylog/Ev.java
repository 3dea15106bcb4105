package org.qemuft.replaylog;

import java.util.ArrayList;
import java.util.List;

/** One event as a scanner or the reference decoder reports it. */
record Ev(int kind, long start, long end, long icount) {
  /** A listener that collects events into a list (tests only; the scanner itself never allocates). */
  static final class Collector implements ReplayEventListener {
    final List<Ev> events = new ArrayList<>();

    @Override
    public void onEvent(int kind, long start, long end, long icount) {
      events.add(new Ev(kind, start, end, icount));
    }
  }
}
