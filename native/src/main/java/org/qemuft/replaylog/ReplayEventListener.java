package org.qemuft.replaylog;

/**
 * Receives each whole event the {@link ReplayLogScanner} finds, in stream order. Called on the
 * thread that feeds the scanner, once per event, with primitives only so the scanner's hot path
 * allocates nothing.
 */
@FunctionalInterface
public interface ReplayEventListener {
  /**
   * One whole event.
   *
   * @param kind the kind byte, 0..39 ({@link ReplayEventKind#of(int)} names it)
   * @param start absolute stream offset of the kind byte
   * @param end absolute stream offset just past the event; cutting the stream here is safe
   * @param icount the running instruction count after this event: the start icount plus the
   *     counts of every INSTRUCTION event up to and including this one
   */
  void onEvent(int kind, long start, long end, long icount);
}
