"""The load generator's HTTP client (bench/load.py) against a server of known answers: a
figure counts an answer it could not read as the client's error, whatever was served."""

import http.server
import threading

import pytest

from bench import load

# a PDF's binary comment line: bytes no text decoding reads (as every statement PDF has)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
ANSWERS = {
    "/statement.pdf": ("application/pdf", PDF),
    "/answer.json": ("application/json", '{"name": "Кофейня"}'.encode()),
    "/file.csv": ("text/csv; charset=utf-8", "id,name\n1,Кофейня\n".encode()),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        kind, content = ANSWERS[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args):
        pass


@pytest.fixture
def client():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = load.Client(f"http://127.0.0.1:{server.server_address[1]}")
    yield client
    client.close()
    server.shutdown()
    server.server_close()


def test_a_pdf_is_read_as_its_bytes(client):
    assert client.request("GET", "/statement.pdf") == (200, PDF)


def test_json_and_csv_are_read_as_text(client):
    assert client.request("GET", "/answer.json") == (200, '{"name": "Кофейня"}')
    assert client.request("GET", "/file.csv") == (200, "id,name\n1,Кофейня\n")
