package org.qemuft.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Instant;
import java.util.Objects;

/**
 * An asynchronous event QEMU sent, e.g. {@code STOP}, {@code RESUME}, {@code SHUTDOWN},
 * {@code JOB_STATUS_CHANGE}.
 *
 * @param name the event's name
 * @param data its data; an empty object when QEMU sent none, never null
 * @param timestamp when QEMU emitted it (QEMU's host clock)
 */
public record QmpEvent(String name, JsonNode data, Instant timestamp) {
  public QmpEvent {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(data, "data");
    Objects.requireNonNull(timestamp, "timestamp");
  }
}
