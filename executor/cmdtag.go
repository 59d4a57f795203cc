package executor

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// stmtKind names a parse node's statement kind as Postgres' command tag
// does, e.g. "CREATE TABLE", "DROP VIEW", "ALTER TABLE", "INSERT". Statements
// not listed fall back to a name made from the parse node's type
// (AlterCollationStmt gives "ALTER COLLATION").
func stmtKind(n *pg_query.Node) string {
	if n == nil || n.Node == nil {
		return "this statement"
	}
	switch v := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		if v.SelectStmt.GetIntoClause() != nil {
			return "SELECT INTO"
		}
		return "SELECT"
	case *pg_query.Node_InsertStmt:
		return "INSERT"
	case *pg_query.Node_UpdateStmt:
		return "UPDATE"
	case *pg_query.Node_DeleteStmt:
		return "DELETE"
	case *pg_query.Node_MergeStmt:
		return "MERGE"
	case *pg_query.Node_CreateStmt:
		return "CREATE TABLE"
	case *pg_query.Node_CreateTableAsStmt:
		switch {
		case v.CreateTableAsStmt.GetIsSelectInto():
			return "SELECT INTO"
		case v.CreateTableAsStmt.GetObjtype() == pg_query.ObjectType_OBJECT_MATVIEW:
			return "CREATE MATERIALIZED VIEW"
		}
		return "CREATE TABLE AS"
	case *pg_query.Node_ViewStmt:
		return "CREATE VIEW"
	case *pg_query.Node_IndexStmt:
		return "CREATE INDEX"
	case *pg_query.Node_CreateSchemaStmt:
		return "CREATE SCHEMA"
	case *pg_query.Node_CreateFunctionStmt:
		if v.CreateFunctionStmt.GetIsProcedure() {
			return "CREATE PROCEDURE"
		}
		return "CREATE FUNCTION"
	case *pg_query.Node_CreateSeqStmt:
		return "CREATE SEQUENCE"
	case *pg_query.Node_CreateExtensionStmt:
		return "CREATE EXTENSION"
	case *pg_query.Node_CreateRoleStmt:
		switch v.CreateRoleStmt.GetStmtType() {
		case pg_query.RoleStmtType_ROLESTMT_USER:
			return "CREATE USER"
		case pg_query.RoleStmtType_ROLESTMT_GROUP:
			return "CREATE GROUP"
		}
		return "CREATE ROLE"
	case *pg_query.Node_CreatedbStmt:
		return "CREATE DATABASE"
	case *pg_query.Node_CreateTrigStmt:
		return "CREATE TRIGGER"
	case *pg_query.Node_CreateEventTrigStmt:
		return "CREATE EVENT TRIGGER"
	case *pg_query.Node_CompositeTypeStmt, *pg_query.Node_CreateEnumStmt, *pg_query.Node_CreateRangeStmt:
		return "CREATE TYPE"
	case *pg_query.Node_DefineStmt:
		return "CREATE " + objectName(v.DefineStmt.GetKind())
	case *pg_query.Node_CreateDomainStmt:
		return "CREATE DOMAIN"
	case *pg_query.Node_RuleStmt:
		return "CREATE RULE"
	case *pg_query.Node_CreatePolicyStmt:
		return "CREATE POLICY"
	case *pg_query.Node_CreatePublicationStmt:
		return "CREATE PUBLICATION"
	case *pg_query.Node_CreateSubscriptionStmt:
		return "CREATE SUBSCRIPTION"
	case *pg_query.Node_CreateTableSpaceStmt:
		return "CREATE TABLESPACE"
	case *pg_query.Node_CreateFdwStmt:
		return "CREATE FOREIGN DATA WRAPPER"
	case *pg_query.Node_CreateForeignServerStmt:
		return "CREATE SERVER"
	case *pg_query.Node_CreateForeignTableStmt:
		return "CREATE FOREIGN TABLE"
	case *pg_query.Node_CreateUserMappingStmt:
		return "CREATE USER MAPPING"
	case *pg_query.Node_CreateStatsStmt:
		return "CREATE STATISTICS"
	case *pg_query.Node_CreateCastStmt:
		return "CREATE CAST"
	case *pg_query.Node_CreateConversionStmt:
		return "CREATE CONVERSION"
	case *pg_query.Node_CreatePlangStmt:
		return "CREATE LANGUAGE"
	case *pg_query.Node_CreateAmStmt:
		return "CREATE ACCESS METHOD"
	case *pg_query.Node_CreateOpClassStmt:
		return "CREATE OPERATOR CLASS"
	case *pg_query.Node_CreateOpFamilyStmt:
		return "CREATE OPERATOR FAMILY"
	case *pg_query.Node_CreateTransformStmt:
		return "CREATE TRANSFORM"
	case *pg_query.Node_DropStmt:
		return "DROP " + objectName(v.DropStmt.GetRemoveType())
	case *pg_query.Node_DropRoleStmt:
		return "DROP ROLE"
	case *pg_query.Node_DropdbStmt:
		return "DROP DATABASE"
	case *pg_query.Node_DropTableSpaceStmt:
		return "DROP TABLESPACE"
	case *pg_query.Node_DropSubscriptionStmt:
		return "DROP SUBSCRIPTION"
	case *pg_query.Node_DropUserMappingStmt:
		return "DROP USER MAPPING"
	case *pg_query.Node_DropOwnedStmt:
		return "DROP OWNED"
	case *pg_query.Node_ReassignOwnedStmt:
		return "REASSIGN OWNED"
	case *pg_query.Node_AlterTableStmt:
		return "ALTER " + objectName(v.AlterTableStmt.GetObjtype())
	case *pg_query.Node_RenameStmt:
		return "ALTER " + objectName(renamed(v.RenameStmt))
	case *pg_query.Node_AlterObjectSchemaStmt:
		return "ALTER " + objectName(v.AlterObjectSchemaStmt.GetObjectType())
	case *pg_query.Node_AlterOwnerStmt:
		return "ALTER " + objectName(v.AlterOwnerStmt.GetObjectType())
	case *pg_query.Node_AlterObjectDependsStmt:
		return "ALTER " + objectName(v.AlterObjectDependsStmt.GetObjectType())
	case *pg_query.Node_AlterFunctionStmt:
		return "ALTER " + objectName(v.AlterFunctionStmt.GetObjtype())
	case *pg_query.Node_AlterRoleStmt, *pg_query.Node_AlterRoleSetStmt:
		return "ALTER ROLE"
	case *pg_query.Node_AlterDatabaseStmt, *pg_query.Node_AlterDatabaseSetStmt, *pg_query.Node_AlterDatabaseRefreshCollStmt:
		return "ALTER DATABASE"
	case *pg_query.Node_AlterSystemStmt:
		return "ALTER SYSTEM"
	case *pg_query.Node_AlterSeqStmt:
		return "ALTER SEQUENCE"
	case *pg_query.Node_AlterDomainStmt:
		return "ALTER DOMAIN"
	case *pg_query.Node_AlterEnumStmt, *pg_query.Node_AlterTypeStmt:
		return "ALTER TYPE"
	case *pg_query.Node_AlterExtensionStmt, *pg_query.Node_AlterExtensionContentsStmt:
		return "ALTER EXTENSION"
	case *pg_query.Node_AlterPublicationStmt:
		return "ALTER PUBLICATION"
	case *pg_query.Node_AlterSubscriptionStmt:
		return "ALTER SUBSCRIPTION"
	case *pg_query.Node_AlterDefaultPrivilegesStmt:
		return "ALTER DEFAULT PRIVILEGES"
	case *pg_query.Node_AlterPolicyStmt:
		return "ALTER POLICY"
	case *pg_query.Node_AlterTableSpaceOptionsStmt:
		return "ALTER TABLESPACE"
	case *pg_query.Node_AlterTableMoveAllStmt:
		return "ALTER " + objectName(v.AlterTableMoveAllStmt.GetObjtype())
	case *pg_query.Node_AlterFdwStmt:
		return "ALTER FOREIGN DATA WRAPPER"
	case *pg_query.Node_AlterForeignServerStmt:
		return "ALTER SERVER"
	case *pg_query.Node_AlterUserMappingStmt:
		return "ALTER USER MAPPING"
	case *pg_query.Node_AlterEventTrigStmt:
		return "ALTER EVENT TRIGGER"
	case *pg_query.Node_AlterStatsStmt:
		return "ALTER STATISTICS"
	case *pg_query.Node_AlterOperatorStmt:
		return "ALTER OPERATOR"
	case *pg_query.Node_AlterOpFamilyStmt:
		return "ALTER OPERATOR FAMILY"
	case *pg_query.Node_AlterTsdictionaryStmt:
		return "ALTER TEXT SEARCH DICTIONARY"
	case *pg_query.Node_AlterTsconfigurationStmt:
		return "ALTER TEXT SEARCH CONFIGURATION"
	case *pg_query.Node_TruncateStmt:
		return "TRUNCATE TABLE"
	case *pg_query.Node_GrantStmt:
		if v.GrantStmt.GetIsGrant() {
			return "GRANT"
		}
		return "REVOKE"
	case *pg_query.Node_GrantRoleStmt:
		if v.GrantRoleStmt.GetIsGrant() {
			return "GRANT ROLE"
		}
		return "REVOKE ROLE"
	case *pg_query.Node_CopyStmt:
		return "COPY"
	case *pg_query.Node_VacuumStmt:
		if v.VacuumStmt.GetIsVacuumcmd() {
			return "VACUUM"
		}
		return "ANALYZE"
	case *pg_query.Node_ClusterStmt:
		return "CLUSTER"
	case *pg_query.Node_ReindexStmt:
		return "REINDEX"
	case *pg_query.Node_CommentStmt:
		return "COMMENT"
	case *pg_query.Node_SecLabelStmt:
		return "SECURITY LABEL"
	case *pg_query.Node_LockStmt:
		return "LOCK TABLE"
	case *pg_query.Node_DoStmt:
		return "DO"
	case *pg_query.Node_CallStmt:
		return "CALL"
	case *pg_query.Node_NotifyStmt:
		return "NOTIFY"
	case *pg_query.Node_LoadStmt:
		return "LOAD"
	case *pg_query.Node_CheckPointStmt:
		return "CHECKPOINT"
	case *pg_query.Node_RefreshMatViewStmt:
		return "REFRESH MATERIALIZED VIEW"
	case *pg_query.Node_ImportForeignSchemaStmt:
		return "IMPORT FOREIGN SCHEMA"
	case *pg_query.Node_ConstraintsSetStmt:
		return "SET CONSTRAINTS"
	case *pg_query.Node_VariableSetStmt:
		if v.VariableSetStmt.GetKind() == pg_query.VariableSetKind_VAR_RESET ||
			v.VariableSetStmt.GetKind() == pg_query.VariableSetKind_VAR_RESET_ALL {
			return "RESET"
		}
		return "SET"
	case *pg_query.Node_VariableShowStmt:
		return "SHOW"
	case *pg_query.Node_ExplainStmt:
		return "EXPLAIN"
	case *pg_query.Node_PrepareStmt:
		return "PREPARE"
	case *pg_query.Node_ExecuteStmt:
		return "EXECUTE"
	case *pg_query.Node_DeallocateStmt:
		return "DEALLOCATE"
	case *pg_query.Node_DeclareCursorStmt:
		return "DECLARE CURSOR"
	case *pg_query.Node_FetchStmt:
		if v.FetchStmt.GetIsmove() {
			return "MOVE"
		}
		return "FETCH"
	case *pg_query.Node_ClosePortalStmt:
		return "CLOSE CURSOR"
	case *pg_query.Node_DiscardStmt:
		return "DISCARD"
	case *pg_query.Node_ListenStmt:
		return "LISTEN"
	case *pg_query.Node_UnlistenStmt:
		return "UNLISTEN"
	}
	// A parse node's type: alter_collation_stmt gives ALTER COLLATION.
	name := string(n.ProtoReflect().WhichOneof(n.ProtoReflect().Descriptor().Oneofs().Get(0)).Name())
	name = strings.TrimSuffix(name, "_stmt")
	return strings.ToUpper(strings.ReplaceAll(name, "_", " "))
}

// renamed is the kind of object a RENAME statement alters: the relation's
// for a column or table constraint (ALTER TABLE, ALTER VIEW, ...), the
// domain for a domain constraint, the type for an attribute.
func renamed(r *pg_query.RenameStmt) pg_query.ObjectType {
	switch r.GetRenameType() {
	case pg_query.ObjectType_OBJECT_COLUMN, pg_query.ObjectType_OBJECT_TABCONSTRAINT:
		if t := r.GetRelationType(); t != pg_query.ObjectType_OBJECT_TYPE_UNDEFINED {
			return t
		}
		return pg_query.ObjectType_OBJECT_TABLE
	case pg_query.ObjectType_OBJECT_DOMCONSTRAINT:
		return pg_query.ObjectType_OBJECT_DOMAIN
	case pg_query.ObjectType_OBJECT_ATTRIBUTE:
		return pg_query.ObjectType_OBJECT_TYPE
	}
	return r.GetRenameType()
}

// objectName names an object type as SQL does, e.g. "MATERIALIZED VIEW".
func objectName(t pg_query.ObjectType) string {
	switch t {
	case pg_query.ObjectType_OBJECT_MATVIEW:
		return "MATERIALIZED VIEW"
	case pg_query.ObjectType_OBJECT_FDW:
		return "FOREIGN DATA WRAPPER"
	case pg_query.ObjectType_OBJECT_FOREIGN_SERVER:
		return "SERVER"
	case pg_query.ObjectType_OBJECT_STATISTIC_EXT:
		return "STATISTICS"
	case pg_query.ObjectType_OBJECT_TSCONFIGURATION:
		return "TEXT SEARCH CONFIGURATION"
	case pg_query.ObjectType_OBJECT_TSDICTIONARY:
		return "TEXT SEARCH DICTIONARY"
	case pg_query.ObjectType_OBJECT_TSPARSER:
		return "TEXT SEARCH PARSER"
	case pg_query.ObjectType_OBJECT_TSTEMPLATE:
		return "TEXT SEARCH TEMPLATE"
	case pg_query.ObjectType_OBJECT_LARGEOBJECT:
		return "LARGE OBJECT"
	case pg_query.ObjectType_OBJECT_OPCLASS:
		return "OPERATOR CLASS"
	case pg_query.ObjectType_OBJECT_OPFAMILY:
		return "OPERATOR FAMILY"
	case pg_query.ObjectType_OBJECT_TABCONSTRAINT, pg_query.ObjectType_OBJECT_COLUMN:
		return "TABLE"
	case pg_query.ObjectType_OBJECT_DOMCONSTRAINT:
		return "DOMAIN"
	case pg_query.ObjectType_OBJECT_ATTRIBUTE:
		return "TYPE"
	case pg_query.ObjectType_OBJECT_TYPE_UNDEFINED:
		return "OBJECT"
	}
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}
