package org.qemuft.qmp;

/**
 * No answer: the QMP connection could not be made, broke (QEMU exited or was killed), was closed
 * by this client, or QEMU did not reply within the call's timeout. The message names the socket,
 * the command and what happened.
 */
public final class QmpConnectionException extends QmpException {
  private static final long serialVersionUID = 1L;

  public QmpConnectionException(String message) {
    super(message, null);
  }

  public QmpConnectionException(String message, Throwable cause) {
    super(message, cause);
  }
}
