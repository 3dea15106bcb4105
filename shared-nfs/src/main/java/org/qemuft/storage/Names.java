package org.qemuft.storage;

import java.util.regex.Pattern;

/**
 * Names inside shared storage: relative, '/'-separated, each part of letters, digits, '.', '_'
 * and '-', not starting with '.' (names starting with '.' are this library's temporary files).
 */
final class Names {
  private static final Pattern PART = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,199}");

  private Names() {}

  static String check(String name) {
    if (name == null || name.isEmpty()) {
      throw new IllegalArgumentException("storage name is empty");
    }
    for (String part : name.split("/", -1)) {
      if (!PART.matcher(part).matches()) {
        throw new IllegalArgumentException("storage name '" + name + "' is not allowed: each '/'-separated part"
            + " must be 1-200 of [A-Za-z0-9._-] and not start with '.' or '-'");
      }
    }
    return name;
  }

  /** The directory part of a checked name, or "" for a name at the root. */
  static String parent(String name) {
    int i = name.lastIndexOf('/');
    return i < 0 ? "" : name.substring(0, i);
  }

  /** A sibling temporary name of {@code name}: hidden from listings, unique by {@code tag}. */
  static String temp(String name, String kind, String tag) {
    String parent = parent(name);
    String base = name.substring(name.lastIndexOf('/') + 1);
    String t = "." + kind + "-" + tag + "-" + base;
    return parent.isEmpty() ? t : parent + "/" + t;
  }

  static boolean isTemp(String simpleName) {
    return simpleName.startsWith(".");
  }
}
