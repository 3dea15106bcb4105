package org.qemuft.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
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
  private static final MethodHandle OPEN = Libc.downcall("open",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
      Libc.ERRNO, Linker.Option.firstVariadicArg(2));
  private static final MethodHandle SETNS = Libc.downcall("setns",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), Libc.ERRNO);
  private static final MethodHandle CLOSE = Libc.downcall("close",
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
      MemorySegment st = a.allocate(Libc.CALL_STATE);
      int fd = (int) OPEN.invokeExact(st, a.allocateFrom(path), O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0) {
        throw new NamespaceException("cannot open network namespace " + path + ": errno "
            + Libc.errno(st) + " (does 'ip netns list' show it?)");
      }
      int rc = (int) SETNS.invokeExact(st, fd, CLONE_NEWNET);
      int err = Libc.errno(st);
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
