package org.qemuft.controller.channel;

import java.io.IOException;

/** A connection failed before mutual authentication; the message says what was wrong. */
final class ChannelAuthException extends IOException {
  private static final long serialVersionUID = 1L;

  ChannelAuthException(String message) {
    super(message);
  }
}
