"""Shared by the benchmark peers."""
import resource


def peak_rss():
    """Peak resident memory of this process, bytes.

    VmHWM belongs to this process image; ru_maxrss would include the RSS of the parent that
    spawned us (Linux carries it across fork and exec).
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
