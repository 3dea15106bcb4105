package org.qemuft.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;

/**
 * Runs code inside a named network namespace ({@code ip netns add NAME}, i.e.
 * /var/run/netns/NAME). Sockets opened by that code belong to the namespace for their whole life,
 * whichever thread uses them later; the calling thread's own namespace is never changed.
 */
public final class Netns {
  private static final int O_RDONLY = 0;
  private static final int O_CLOEXEC = 0x80000;
  private static final int CLONE_NEWNET = 0x40000000;
  private static final Linker LINKER = Linker.nativeLinker();
  private static final StructLayout STATE = Linker.Option.captureStateLayout();
  private static final VarHandle ERRNO = STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
  private static final Linker.Option ERRNO_OPT = Linker.Option.captureCallState("errno");
  private static final MethodHandle OPEN = LINKER.downcallHandle(LINKER.defaultLookup().find("open").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
      ERRNO_OPT, Linker.Option.firstVariadicArg(2));
  private static final MethodHandle SETNS = LINKER.downcallHandle(LINKER.defaultLookup().find("setns").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), ERRNO_OPT);
  private static final MethodHandle CLOSE = LINKER.downcallHandle(LINKER.defaultLookup().find("close").orElseThrow(),
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));

  private Netns() {}

  /**
   * Runs {@code task} on a new platform thread that has joined network namespace {@code name},
   * waits for it and returns its result.
   *
   * @throws IOException if the namespace cannot be entered (naming it and the reason)
   * @throws ExecutionException wrapping what {@code task} threw
   */
  public static <T> T call(String name, Callable<T> task) throws IOException, ExecutionException, InterruptedException {
    String path = "/var/run/netns/" + name;
    FutureTask<T> run = new FutureTask<>(() -> {
      enter(path);
      return task.call();
    });
    Thread t = Thread.ofPlatform().name("netns " + name).start(run);
    try {
      return run.get();
    } catch (ExecutionException e) {
      if (e.getCause() instanceof NamespaceException ne) {
        throw new IOException(ne.getMessage());
      }
      throw e;
    } finally {
      t.join();
    }
  }

  private static final class NamespaceException extends Exception {
    private static final long serialVersionUID = 1L;

    NamespaceException(String m) {
      super(m);
    }
  }

  private static void enter(String path) throws NamespaceException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment st = a.allocate(STATE);
      int fd = (int) OPEN.invokeExact(st, a.allocateFrom(path), O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0) {
        throw new NamespaceException("cannot open network namespace " + path + ": errno "
            + (int) ERRNO.get(st, 0L) + " (does 'ip netns list' show it?)");
      }
      int rc = (int) SETNS.invokeExact(st, fd, CLONE_NEWNET);
      int err = (int) ERRNO.get(st, 0L);
      int ignored = (int) CLOSE.invokeExact(fd);
      if (rc != 0) {
        throw new NamespaceException("cannot enter network namespace " + path + ": errno " + err
            + " (needs CAP_SYS_ADMIN)");
      }
    } catch (NamespaceException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call failed entering " + path, t);
    }
  }
}
