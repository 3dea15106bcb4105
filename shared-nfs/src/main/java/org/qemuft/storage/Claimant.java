package org.qemuft.storage;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Objects;

/**
 * Who asks for the go-live lock: the host, the controller's process id and its role at the time
 * (e.g. "backup" that lost its primary, or "primary" that lost its backup). Only recorded and
 * shown; two claimants are told apart by a random claim id, never by these fields.
 */
public record Claimant(String host, long pid, String role) {
  public Claimant {
    Objects.requireNonNull(host, "host");
    Objects.requireNonNull(role, "role");
    if (host.isBlank() || host.length() > 255) {
      throw new IllegalArgumentException("claimant host '" + host + "' must be 1-255 characters");
    }
    if (role.length() > 64) {
      throw new IllegalArgumentException("claimant role '" + role + "' is longer than 64 characters");
    }
  }

  /** This JVM: the local host name and process id, with {@code role}. */
  public static Claimant thisProcess(String role) {
    String host;
    try {
      host = InetAddress.getLocalHost().getHostName();
    } catch (UnknownHostException e) {
      host = Objects.requireNonNullElse(System.getenv("HOSTNAME"), "unknown-host");
    }
    return new Claimant(host, ProcessHandle.current().pid(), role);
  }
}
