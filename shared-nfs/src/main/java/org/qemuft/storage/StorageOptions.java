package org.qemuft.storage;

import java.time.Duration;
import java.util.Objects;

/**
 * How long shared storage may take before calls give up.
 *
 * @param rpcTimeout how long one request to the server (one NFS RPC, or one file-system call on
 *     a mounted directory) may go unanswered before it counts as no answer
 * @param waitLimit how long one {@link SharedStorage} operation keeps retrying while the storage
 *     does not answer (reconnecting in between) before it throws {@link
 *     StorageUnavailableException}; zero means one attempt
 */
public record StorageOptions(Duration rpcTimeout, Duration waitLimit) {
  /** 2 s per request, 30 s per operation. */
  public static final StorageOptions DEFAULT = new StorageOptions(Duration.ofSeconds(2), Duration.ofSeconds(30));

  public StorageOptions {
    Objects.requireNonNull(rpcTimeout, "rpcTimeout");
    Objects.requireNonNull(waitLimit, "waitLimit");
    if (rpcTimeout.toMillis() < 1) {
      throw new IllegalArgumentException("storage rpcTimeout " + rpcTimeout + " must be at least 1 ms");
    }
    if (waitLimit.isNegative()) {
      throw new IllegalArgumentException("storage waitLimit " + waitLimit + " must not be negative");
    }
  }

  public StorageOptions withWaitLimit(Duration limit) {
    return new StorageOptions(rpcTimeout, limit);
  }
}
