package resolvers

import (
	"cloudkeys/audit"
	"cloudkeys/graph"
	"cloudkeys/models"
)

// The resolvers' part of the audit trail: the events of credential and
// relay-key changes (recorded in each change's transaction, audit.Log.Do),
// and pages of events as GraphQL returns them.

// credentialEvent is an audit event about cred (nil when the operation
// failed: the event is then not recorded) done by its owner.
func credentialEvent(action audit.Action, ownerID string, cred *models.CloudCredential) audit.Event {
	e := audit.Event{Action: action, Outcome: audit.Succeeded, ActorID: ownerID, TargetType: "credential"}
	if cred != nil {
		e.TargetID, e.Detail = cred.ID, "name="+cred.Name
	}
	return e
}

// relayKeyEvent is an audit event about k (nil when the operation failed)
// done by its owner. The detail names the key's credential; nothing of
// its secret, not even the hint.
func relayKeyEvent(action audit.Action, ownerID string, k *models.RelayKey) audit.Event {
	e := audit.Event{Action: action, Outcome: audit.Succeeded, ActorID: ownerID, TargetType: "relay_key"}
	if k != nil {
		e.TargetID, e.Detail = k.ID, "credential="+k.CredentialID
	}
	return e
}

// auditConnection is a page of audit rows as GraphQL returns it.
func auditConnection(rows []audit.Row, hasNext bool) *graph.AuditEventConnection {
	conn := &graph.AuditEventConnection{Edges: []*graph.AuditEventEdge{}, PageInfo: &graph.PageInfo{HasNextPage: hasNext}}
	for i := range rows {
		edge := &graph.AuditEventEdge{Cursor: rows[i].Cursor(), Node: &rows[i]}
		conn.Edges = append(conn.Edges, edge)
		conn.PageInfo.EndCursor = &edge.Cursor
	}
	return conn
}
