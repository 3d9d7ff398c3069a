-- /auth's wrk script (after bench/wrk.lua): every request carries the sign-in cookie
-- in BENCH_COOKIE, as a reverse proxy's sub-request passes on the browser's.
wrk.path = "/auth"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
wrk.headers["X-Original-URL"] = "http://127.0.0.1:8888/orders?page=2"
