package org.qemuft.replaylog;

import java.io.IOException;

/**
 * The bytes given to a {@link ReplayLogScanner} are not a QEMU 7.2 replay log: an unsupported
 * version, an unknown event kind, an impossible field value or length, or data after END. The
 * message names the offending absolute offset and value. This is the only exception the scanner
 * throws for bad input; once thrown, the scanner refuses further input.
 */
public final class ReplayLogException extends IOException {
  private final long offset;

  ReplayLogException(long offset, String message) {
    super(message);
    this.offset = offset;
  }

  ReplayLogException(long offset, String message, Throwable cause) {
    super(message, cause);
    this.offset = offset;
  }

  /** Absolute stream offset of the byte or field that is wrong. */
  public long offset() {
    return offset;
  }
}
