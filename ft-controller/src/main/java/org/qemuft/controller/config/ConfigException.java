package org.qemuft.controller.config;

/** A configuration that cannot be used; the message names the file, the field and the reason. */
public final class ConfigException extends Exception {
  private static final long serialVersionUID = 1L;

  public ConfigException(String message) {
    super(message);
  }

  public ConfigException(String message, Throwable cause) {
    super(message, cause);
  }
}
