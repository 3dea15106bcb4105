package org.qemuft.qmp;

import java.nio.file.Path;

/**
 * QEMU answered a command with an error reply, e.g. {@code CommandNotFound} for a command it does
 * not know or {@code GenericError} for most failures. The connection is fine and stays usable.
 */
public final class QmpErrorException extends QmpException {
  private static final long serialVersionUID = 1L;

  private final String command;
  private final String errorClass;
  private final String description;

  /**
   * @param command the command QEMU refused, as the caller would recognise it
   * @param socket the QMP socket QEMU answered on
   * @param errorClass QEMU's error class ({@code GenericError}, {@code CommandNotFound}, ...)
   * @param description QEMU's human-readable description
   */
  public QmpErrorException(String command, Path socket, String errorClass, String description) {
    this(command, socket, errorClass, description, null);
  }

  /** With {@code context} (e.g. which job, which HMP command line) in the message. */
  QmpErrorException(String command, Path socket, String errorClass, String description, String context) {
    super("QEMU on " + socket + " refused '" + command + "'" + (context == null ? "" : " (" + context + ")")
        + ": " + errorClass + ": " + description, null);
    this.command = command;
    this.errorClass = errorClass;
    this.description = description;
  }

  /** The command QEMU refused. */
  public String command() {
    return command;
  }

  /** QEMU's error class, e.g. {@code GenericError}, {@code CommandNotFound}, {@code DeviceNotFound}. */
  public String errorClass() {
    return errorClass;
  }

  /** QEMU's description of the error, as it sent it. */
  public String description() {
    return description;
  }
}
