package org.qemuft.storage;

/**
 * Shared storage did not answer within the configured wait ({@link StorageOptions#waitLimit()}):
 * the server is down, frozen or unreachable. The operation's effect is unknown to this caller
 * only in the sense that it may or may not have reached the server; every operation of
 * {@link SharedStorage} is written so that calling it again later is safe and tells the truth.
 * For the go-live lock this means: do not run alone, try again.
 */
public class StorageUnavailableException extends StorageException {
  private static final long serialVersionUID = 1L;

  public StorageUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
