package org.qemuft.qmp;

import java.util.List;

/**
 * What QEMU said when the connection opened.
 *
 * @param version QEMU's version
 * @param capabilities the capabilities QEMU offered (e.g. {@code oob}); this client enables none
 */
public record QmpGreeting(QemuVersion version, List<String> capabilities) {
  public QmpGreeting {
    capabilities = List.copyOf(capabilities);
  }
}
