/work/main/vendor/tiny_http/target/debug/deps/tiny_http-28d7b1c70bda8e44.d: src/lib.rs src/client.rs src/common.rs src/connection.rs src/limits.rs src/request.rs src/response.rs src/test.rs src/util/mod.rs src/util/custom_stream.rs src/util/deadline.rs src/util/messages_queue.rs src/util/refined_tcp_stream.rs src/util/sequential.rs src/util/task_pool.rs Cargo.toml

/work/main/vendor/tiny_http/target/debug/deps/libtiny_http-28d7b1c70bda8e44.rmeta: src/lib.rs src/client.rs src/common.rs src/connection.rs src/limits.rs src/request.rs src/response.rs src/test.rs src/util/mod.rs src/util/custom_stream.rs src/util/deadline.rs src/util/messages_queue.rs src/util/refined_tcp_stream.rs src/util/sequential.rs src/util/task_pool.rs Cargo.toml

src/lib.rs:
src/client.rs:
src/common.rs:
src/connection.rs:
src/limits.rs:
src/request.rs:
src/response.rs:
src/test.rs:
src/util/mod.rs:
src/util/custom_stream.rs:
src/util/deadline.rs:
src/util/messages_queue.rs:
src/util/refined_tcp_stream.rs:
src/util/sequential.rs:
src/util/task_pool.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=
# env-dep:CLIPPY_CONF_DIR
