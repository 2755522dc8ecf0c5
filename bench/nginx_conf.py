"""The nginx configuration the bench scripts share: one process (no master, no daemon, so the
process the harness starts is the one that serves), every temporary path under one directory,
keep-alive without a request limit. Imported by bench/proxies.py and bench/compare.py."""

MAIN = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections {connections}; }}
http {{
  access_log {access};
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  {body}
}}
"""


def main_conf(directory, body, access="off", error_log=None, connections=1024):
    """nginx.conf text: `body` goes inside the http block; paths live in `directory`."""
    return MAIN.format(dir=directory, body=body, access=access,
                       error_log=error_log or f"{directory}/error.log", connections=connections)
