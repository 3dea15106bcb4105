package org.qemuft.controller.vm;

/** QEMU did not do what it was started for: it exited, or did not get there in time. */
public final class QemuException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public QemuException(String message) {
    super(message);
  }
}
