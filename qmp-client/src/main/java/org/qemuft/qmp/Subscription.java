package org.qemuft.qmp;

/** An event listener's registration; {@link #close()} removes the listener. Idempotent. */
public interface Subscription extends AutoCloseable {
  @Override
  void close();
}
