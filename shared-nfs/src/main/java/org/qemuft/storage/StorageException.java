package org.qemuft.storage;

import java.io.IOException;

/**
 * Shared storage answered, but not as hoped: names the backend and location, the operation, the
 * name inside the storage and what the server or file system said. Nothing was guessed: the
 * operation either did not happen, or (for {@link SharedStorage#createExclusive}) its outcome is
 * reported, never assumed.
 */
public class StorageException extends IOException {
  private static final long serialVersionUID = 1L;

  public StorageException(String message) {
    super(message);
  }

  public StorageException(String message, Throwable cause) {
    super(message, cause);
  }
}
