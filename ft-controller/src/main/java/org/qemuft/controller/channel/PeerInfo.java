package org.qemuft.controller.channel;

/**
 * The authenticated peer of a new connection.
 *
 * @param role the peer's role, {@code "primary"} or {@code "backup"}
 * @param address the peer's IP address and port
 * @param resumeOffset the backup's contiguous end when the connection was made: the primary's
 *     first LOG frame on this connection starts here
 */
public record PeerInfo(String role, String address, long resumeOffset) {}
