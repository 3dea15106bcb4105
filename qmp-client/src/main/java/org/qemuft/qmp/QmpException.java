package org.qemuft.qmp;

import java.io.IOException;

/**
 * A QMP call did not give a result. Exactly one of three kinds, told apart by type:
 *
 * <ul>
 *   <li>{@link QmpErrorException}: QEMU answered, and the answer is an error ("QEMU said no");
 *   <li>{@link QmpConnectionException}: there is no answer: the connection could not be made,
 *       broke, or no reply came within the timeout;
 *   <li>{@link QmpProtocolException}: the peer sent something that is not QMP.
 * </ul>
 *
 * Using the API wrongly (a null command, arguments that are not a JSON object) is not one of
 * them: that throws the JDK's unchecked {@link IllegalArgumentException}.
 */
public sealed class QmpException extends IOException
    permits QmpErrorException, QmpConnectionException, QmpProtocolException {
  private static final long serialVersionUID = 1L;

  QmpException(String message, Throwable cause) {
    super(message, cause);
  }
}
