package org.qemuft.qmp;

/**
 * The peer on the QMP socket broke the protocol: it sent something that is not JSON, a message
 * too long to be QMP, no greeting where one belongs, or a reply to a request that was never made.
 * The message quotes (a bounded part of) what was received. The connection is closed: after a
 * violation nothing more it says can be trusted.
 */
public final class QmpProtocolException extends QmpException {
  private static final long serialVersionUID = 1L;

  public QmpProtocolException(String message) {
    super(message, null);
  }

  public QmpProtocolException(String message, Throwable cause) {
    super(message, cause);
  }
}
