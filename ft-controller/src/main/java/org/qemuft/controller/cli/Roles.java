package org.qemuft.controller.cli;

import java.util.Locale;
import org.qemuft.controller.config.FtConfig.Role;

/** Parses the --role option the same way in every command. */
final class Roles {
  private Roles() {}

  static Role parse(String s) {
    try {
      return Role.valueOf(s.strip().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--role must be primary or backup, not '" + s + "'");
    }
  }
}
