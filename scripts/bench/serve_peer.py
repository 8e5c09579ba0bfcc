"""The peer of `vibeflow bench serve --vs-peer`: llama.cpp's OpenAI-compatible server
(llama-cpp-python[server]) on the same GGUF and thread count, listening on loopback.

    python3 scripts/bench/serve_peer.py MODEL.gguf THREADS PORT

Serves the model as `bench` until killed. Requests are answered one at a time (the server
holds one llama context), as llama-cpp-python does by default.
"""
import sys

from llama_cpp.server.__main__ import main


if __name__ == "__main__":
    path, threads, port = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.argv = [
        "llama_cpp.server",
        "--model", path,
        "--model_alias", "bench",
        "--n_threads", threads,
        "--n_threads_batch", threads,
        "--n_ctx", "2048",
        "--host", "127.0.0.1",
        "--port", port,
        "--verbose", "false",
        # Queue concurrent requests (its default interrupts the running one for a new one).
        "--interrupt_requests", "false",
    ]
    main()
