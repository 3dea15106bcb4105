package org.qemuft.nativeio;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The two system calls the log ring waits and wakes with: futex(2) on a 32-bit word of a shared
 * mapping, and membarrier(2), with which a side about to sleep makes its "waiting" flag visible to
 * a peer that publishes without a fence (see native/src/main/c/ftring.c). Linux only; the syscall
 * numbers are per architecture.
 */
final class Futex {
  private static final int FUTEX_WAIT = 0;
  private static final int FUTEX_WAKE = 1;
  private static final int MEMBARRIER_CMD_QUERY = 0;
  private static final int MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1;

  private static final long SYS_FUTEX;
  private static final long SYS_MEMBARRIER;

  static {
    String arch = System.getProperty("os.arch");
    switch (arch) {
      case "amd64", "x86_64" -> {
        SYS_FUTEX = 202;
        SYS_MEMBARRIER = 324;
      }
      case "aarch64" -> {
        SYS_FUTEX = 98;
        SYS_MEMBARRIER = 283;
      }
      default -> throw new ExceptionInInitializerError(
          "qemu-ft's log ring knows the futex and membarrier system calls of amd64 and aarch64 "
              + "Linux only, not of " + arch);
    }
  }

  private static final Linker LINKER = Linker.nativeLinker();
  private static final MethodHandle SYSCALL_FUTEX = LINKER.downcallHandle(
      LINKER.defaultLookup().find("syscall").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS,
          ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.ADDRESS,
          ValueLayout.JAVA_INT),
      Linker.Option.firstVariadicArg(1));
  private static final MethodHandle SYSCALL_3INT = LINKER.downcallHandle(
      LINKER.defaultLookup().find("syscall").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
          ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
      Linker.Option.firstVariadicArg(1));

  /** Whether this kernel offers MEMBARRIER_CMD_GLOBAL_EXPEDITED. */
  private static final boolean GLOBAL_EXPEDITED = queryMembarrier();

  private Futex() {}

  /**
   * Sleeps while {@code word} holds {@code expected}, at most {@code timeoutNanos}. Returns on a
   * wake-up, a changed word, a signal or the timeout alike: the caller looks again.
   *
   * @param timespec 16 bytes of scratch memory for the relative timeout
   */
  static void await(MemorySegment word, int expected, long timeoutNanos, MemorySegment timespec) {
    long t = Math.max(0, timeoutNanos);
    timespec.set(ValueLayout.JAVA_LONG, 0, t / 1_000_000_000L);
    timespec.set(ValueLayout.JAVA_LONG, 8, t % 1_000_000_000L);
    try {
      long ignored = (long) SYSCALL_FUTEX.invokeExact(SYS_FUTEX, word, FUTEX_WAIT, expected,
          timespec, MemorySegment.NULL, 0);
    } catch (Throwable e) {
      throw new IllegalStateException("futex wait failed", e);
    }
  }

  /** Wakes every thread (of any process) sleeping on {@code word}. */
  static void wake(MemorySegment word) {
    try {
      long ignored = (long) SYSCALL_FUTEX.invokeExact(SYS_FUTEX, word, FUTEX_WAKE,
          Integer.MAX_VALUE, MemorySegment.NULL, MemorySegment.NULL, 0);
    } catch (Throwable e) {
      throw new IllegalStateException("futex wake failed", e);
    }
  }

  /**
   * Runs a full memory barrier on every running thread of the processes registered for it (the
   * shim registers QEMU). Without kernel support the peers fence themselves, so this is a no-op.
   */
  static void barrierOnPeers() {
    if (!GLOBAL_EXPEDITED) {
      return;
    }
    try {
      long ignored = (long) SYSCALL_3INT.invokeExact(SYS_MEMBARRIER,
          MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
    } catch (Throwable e) {
      throw new IllegalStateException("membarrier failed", e);
    }
  }

  private static boolean queryMembarrier() {
    try {
      long cmds = (long) SYSCALL_3INT.invokeExact(SYS_MEMBARRIER, MEMBARRIER_CMD_QUERY, 0, 0);
      return cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
    } catch (Throwable e) {
      return false;
    }
  }
}
