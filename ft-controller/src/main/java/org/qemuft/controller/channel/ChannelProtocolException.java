package org.qemuft.controller.channel;

import java.io.IOException;

/**
 * The peer sent something the protocol does not allow: a corrupt frame (magic, version, type,
 * flags, length, CRC) or one out of order (sequence, offset). The connection is reset; nothing
 * from the offending frame is delivered.
 */
final class ChannelProtocolException extends IOException {
  private static final long serialVersionUID = 1L;

  ChannelProtocolException(String message) {
    super(message);
  }
}
