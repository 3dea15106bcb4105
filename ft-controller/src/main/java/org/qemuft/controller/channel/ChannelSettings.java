package org.qemuft.controller.channel;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * What both ends of one pair's logging channel must agree on, plus this end's timing.
 *
 * @param pairId the pair's id (1-64 of {@code [A-Za-z0-9._-]}, as in the pair's YAML file)
 * @param epoch the pairing's generation; a peer in another epoch is refused
 * @param secret the shared secret (at least 16 bytes); never sent, only proven. Copied in and out
 * @param compression whether this end compresses the LOG frames it sends (zstd); the receiver
 *     reads either, so the two ends need not agree
 * @param heartbeatInterval how often this end sends a HEARTBEAT when it has sent nothing else
 * @param peerTimeout how long the peer may stay silent before {@link ChannelListener#onPeerSilent}
 *     and how long one write may make no progress before the connection is reset; at least twice
 *     the heartbeat interval
 * @param handshakeTimeout how long a connection may take from TCP connect to mutual
 *     authentication, and how long the primary waits for a TCP connect
 */
public record ChannelSettings(String pairId, long epoch, byte[] secret, boolean compression,
    Duration heartbeatInterval, Duration peerTimeout, Duration handshakeTimeout) {

  private static final Pattern ID = Pattern.compile("[A-Za-z0-9._-]{1,64}");
  /** Shortest secret accepted: a shorter one could be guessed from one captured handshake. */
  public static final int MIN_SECRET_BYTES = 16;
  /** Handshake timeout of the six-argument constructor: the larger of this and the peer timeout. */
  public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(5);

  public ChannelSettings {
    Objects.requireNonNull(pairId, "pairId");
    Objects.requireNonNull(secret, "secret");
    Objects.requireNonNull(heartbeatInterval, "heartbeatInterval");
    Objects.requireNonNull(peerTimeout, "peerTimeout");
    Objects.requireNonNull(handshakeTimeout, "handshakeTimeout");
    if (!ID.matcher(pairId).matches()) {
      throw new IllegalArgumentException("pair id '" + pairId + "' is not 1-64 of [A-Za-z0-9._-]");
    }
    if (epoch < 0) {
      throw new IllegalArgumentException("epoch " + epoch + " is negative");
    }
    if (secret.length < MIN_SECRET_BYTES) {
      throw new IllegalArgumentException("the pair's secret is " + secret.length + " bytes; at least "
          + MIN_SECRET_BYTES + " are needed (e.g. head -c 32 /dev/urandom > the secret file)");
    }
    if (heartbeatInterval.isNegative() || heartbeatInterval.isZero()) {
      throw new IllegalArgumentException("heartbeatInterval " + heartbeatInterval + " is not positive");
    }
    if (peerTimeout.compareTo(heartbeatInterval.multipliedBy(2)) < 0) {
      throw new IllegalArgumentException("peerTimeout " + peerTimeout.toMillis() + " ms is less than two heartbeat"
          + " intervals (" + heartbeatInterval.multipliedBy(2).toMillis() + " ms): a healthy idle peer would look dead");
    }
    if (handshakeTimeout.isNegative() || handshakeTimeout.isZero()) {
      throw new IllegalArgumentException("handshakeTimeout " + handshakeTimeout + " is not positive");
    }
    secret = secret.clone();
  }

  /** Settings with the default handshake timeout (5 s, or the peer timeout if that is longer). */
  public ChannelSettings(String pairId, long epoch, byte[] secret, boolean compression,
      Duration heartbeatInterval, Duration peerTimeout) {
    this(pairId, epoch, secret, compression, heartbeatInterval, peerTimeout,
        peerTimeout != null && peerTimeout.compareTo(DEFAULT_HANDSHAKE_TIMEOUT) > 0 ? peerTimeout : DEFAULT_HANDSHAKE_TIMEOUT);
  }

  /** A copy of the secret. */
  @Override
  public byte[] secret() {
    return secret.clone();
  }

  /** The pair id's bytes as they go into HELLO and the proofs. */
  byte[] pairIdBytes() {
    return pairId.getBytes(StandardCharsets.US_ASCII);
  }

  /** Never prints the secret. */
  @Override
  public String toString() {
    return "ChannelSettings[pairId=" + pairId + ", epoch=" + epoch + ", secret=(" + secret.length + " bytes)"
        + ", compression=" + compression + ", heartbeatInterval=" + heartbeatInterval.toMillis() + "ms"
        + ", peerTimeout=" + peerTimeout.toMillis() + "ms, handshakeTimeout=" + handshakeTimeout.toMillis() + "ms]";
  }
}
