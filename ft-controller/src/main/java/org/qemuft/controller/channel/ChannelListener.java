package org.qemuft.controller.channel;

import java.time.Duration;

/**
 * What the logging channel tells its controller. Every method except {@link #onAuthFailure} is
 * called on the channel's reader thread of the current connection, in the order things happened,
 * never two at once: a connection's {@link #onDisconnected} comes before the next connection's
 * {@link #onConnected}. A callback that blocks stops the channel from reading (TCP then pushes
 * back on the peer). Callbacks may call {@link LogChannel#sendAck} and the other send methods.
 */
public interface ChannelListener {
  /** Mutual authentication succeeded; the channel is {@link LogChannel#connected()} from now on. */
  default void onConnected(PeerInfo peer) {}

  /**
   * Backup side: whole replay events {@code events[0..len)} at stream offset {@code offset}.
   * Offsets are contiguous across calls and connections (a new connection resumes at the offset
   * the backup reported). The array is reused when this returns: copy what you keep. Return
   * promptly: while this runs nothing is read, and a backup that reads nothing for the peer
   * timeout is reset by the primary as dead. Flow control is the primary's job (ship no further
   * than the backup can hold), not this method's.
   */
  default void onLog(long offset, byte[] events, int len) {}

  /**
   * Primary side: the backup holds the stream up to {@code heldUpTo} and has replayed up to
   * {@code replayedUpTo} (instruction count {@code replayIcount}). Non-decreasing within one
   * connection; after a reconnect the first ack may repeat older values.
   */
  default void onAck(long heldUpTo, long replayedUpTo, long replayIcount) {}

  /**
   * The peer has sent nothing at all (no frame of any kind) for {@code silentFor}, which is at
   * least the peer timeout. Called once per silence: again only after a frame has arrived and a
   * new silence has lasted the peer timeout. The channel does not drop a silent connection by
   * itself; deciding what silence means (failover) is the controller's job.
   */
  default void onPeerSilent(Duration silentFor) {}

  /**
   * A connection that was {@link #onConnected connected} has ended: reset for a corrupt or
   * out-of-order frame or a stalled write, the peer closed it, said GOODBYE (the reason includes
   * the peer's words), was replaced by a newer connection, or this channel was closed. Exactly
   * once per {@link #onConnected}. The primary redials by itself.
   */
  default void onDisconnected(String reason) {}

  /**
   * A connection attempt failed before mutual authentication (wrong secret, pair id, epoch or
   * role, garbage, a replayed proof, silence past the handshake timeout). Nothing was delivered
   * from it and no log was sent to it; any current connection is unaffected. Called on that
   * attempt's thread: on the backup, possibly while another callback runs.
   *
   * @param peer the peer's address
   * @param reason what was wrong, for the operator
   */
  default void onAuthFailure(String peer, String reason) {}
}
