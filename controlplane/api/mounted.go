package api

import (
	"log/slog"
	"net/http"
)

// WriteErrorWith maps err to its problem exactly as Server.WriteError does,
// for routes that other packages mount with New's extra routes and that
// have no *Server at hand.
func WriteErrorWith(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	(&Server{log: log}).WriteError(w, r, err)
}
