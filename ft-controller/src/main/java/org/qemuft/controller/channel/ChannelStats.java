package org.qemuft.controller.channel;

/**
 * Counters of one channel since it was opened, over all its connections.
 *
 * @param logBytesRaw LOG payload bytes before compression (sent on the primary, received on the backup)
 * @param logBytesWire bytes of LOG frames on the wire, headers included (compare with {@code logBytesRaw})
 * @param framesSent frames of every type sent after authentication (HELLO and AUTH are not counted)
 * @param framesReceived frames of every type received and accepted after authentication
 * @param lastFrameAgeMs milliseconds since the last frame was received; -1 if none ever was
 * @param authFailures connection attempts that failed before mutual authentication
 * @param resets authenticated connections that ended without a GOODBYE from either side
 *     (corrupt or out-of-order frame, stalled write, connection lost)
 * @param connects authenticated connections made
 */
public record ChannelStats(long logBytesRaw, long logBytesWire, long framesSent, long framesReceived,
    long lastFrameAgeMs, long authFailures, long resets, long connects) {}
