package org.qemuft.qmp;

/**
 * QEMU's version as QMP reports it (the greeting and {@code query-version}).
 *
 * @param major e.g. 7
 * @param minor e.g. 2
 * @param micro e.g. 22
 * @param packageName the distribution's package version, e.g. {@code Debian 1:7.2+dfsg-7+deb12u18};
 *     QMP calls it {@code package}; empty if QEMU reports none
 */
public record QemuVersion(int major, int minor, int micro, String packageName) {
  @Override
  public String toString() {
    return major + "." + minor + "." + micro + (packageName.isEmpty() ? "" : " (" + packageName + ")");
  }
}
