package org.qemuft.nativeio;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/** What this package's libc calls share: finding a function, and errno captured after a call. */
final class Libc {
  private static final Linker LINKER = Linker.nativeLinker();
  /** The layout of a call's captured state; allocate one per thread that makes calls. */
  static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
  /** Pass to {@link #downcall} to capture errno into a {@link #CALL_STATE} given as first argument. */
  static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
  private static final VarHandle ERRNO_FIELD = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
  private static final MethodHandle STRERROR = downcall("strerror",
      FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_INT));

  private Libc() {}

  static MethodHandle downcall(String fn, FunctionDescriptor fd, Linker.Option... opts) {
    return LINKER.downcallHandle(LINKER.defaultLookup().find(fn)
        .orElseThrow(() -> new IllegalStateException("libc has no " + fn)), fd, opts);
  }

  /** errno as a call captured it into {@code state}. */
  static int errno(MemorySegment state) {
    return (int) ERRNO_FIELD.get(state, 0L);
  }

  /** errno as a call captured it into {@code state}, as text: "No such process (errno 3)". */
  static String errnoText(MemorySegment state) {
    int e = errno(state);
    try {
      MemorySegment s = (MemorySegment) STRERROR.invokeExact(e);
      return s.reinterpret(256).getString(0) + " (errno " + e + ")";
    } catch (Throwable t) {
      return "errno " + e;
    }
  }
}
