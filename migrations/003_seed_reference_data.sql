-- SPDX-License-Identifier: MIT
-- Reference data the server cannot run without: the built-in roles, the permissions the
-- route table names, and the plans and features offered at launch. Later changes go
-- through the admin API or a new migration, never by editing this file.
-- Rows are linked by name rather than by literal uuid so that ids stay generated.

INSERT INTO roles (name, description, privilege_level) VALUES
    ('guest',      'Unauthenticated visitor; holds no permissions',              0),
    ('user',       'Registered account',                                        10),
    ('subscriber', 'Account with an active paid or trial subscription',         50),
    ('admin',      'Operator who manages users, subscriptions and audit logs',  90),
    ('superadmin', 'Full control, including settings, roles, features, plans', 100);

INSERT INTO permissions (name, description) VALUES
    ('read_profile',         'Read one''s own profile'),
    ('update_profile',       'Change one''s own profile'),
    ('view_dashboard',       'Open the dashboard'),
    ('manage_users',         'List, delete and change the role of users'),
    ('view_analytics',       'Read platform analytics'),
    ('manage_subscriptions', 'Change any user''s subscription'),
    ('view_audit_logs',      'Read the audit log'),
    ('manage_settings',      'Read and change platform settings'),
    ('manage_roles',         'Create roles and grant permissions'),
    ('manage_features',      'Create features and change plans');

-- guest gets nothing; subscriber is user with a higher level, not more permissions.
INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id
  FROM (VALUES
           ('user',       'read_profile'),
           ('user',       'update_profile'),
           ('user',       'view_dashboard'),
           ('subscriber', 'read_profile'),
           ('subscriber', 'update_profile'),
           ('subscriber', 'view_dashboard'),
           ('admin',      'read_profile'),
           ('admin',      'update_profile'),
           ('admin',      'view_dashboard'),
           ('admin',      'manage_users'),
           ('admin',      'view_analytics'),
           ('admin',      'manage_subscriptions'),
           ('admin',      'view_audit_logs')
       ) AS g (role_name, permission_name)
  JOIN roles r ON r.name = g.role_name
  JOIN permissions p ON p.name = g.permission_name;

-- superadmin holds every permission that exists.
INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id
  FROM roles r CROSS JOIN permissions p
 WHERE r.name = 'superadmin';

INSERT INTO features (name, description, category) VALUES
    ('basic_dashboard',    'The standard dashboard',                              'dashboard'),
    ('premium_dashboard',  'The premium dashboard with extended panels',          'dashboard'),
    ('data_export',        'Export one''s own data as JSON',                      'data'),
    ('advanced_reporting', 'Detailed reports and trends',                         'reporting'),
    ('api_access',         'Programmatic access to the API',                      'integration'),
    ('priority_support',   'Support requests answered first',                     'support');

INSERT INTO subscription_plans
    (name, description, tier, price_monthly_paise, billing_period_days,
     max_api_requests_per_month, trial_period_days, is_active, is_featured)
VALUES
    ('Free',       'Get started at no cost: the basic dashboard and 1,000 requests a month',
     1,      0, 30,    1000,  0, true, false),
    ('Pro',        'Premium dashboard, data export, advanced reporting and API access, '
                   'with 10,000 requests a month and a 14-day free trial',
     10,  99900, 30,   10000, 14, true, true),
    ('Enterprise', 'Every feature, priority support and 1,000,000 requests a month',
     100, 499900, 30, 1000000,  0, true, false);

INSERT INTO plan_features (plan_id, feature_id)
SELECT p.id, f.id
  FROM (VALUES
           ('Free', 'basic_dashboard'),
           ('Pro',  'basic_dashboard'),
           ('Pro',  'premium_dashboard'),
           ('Pro',  'data_export'),
           ('Pro',  'advanced_reporting'),
           ('Pro',  'api_access')
       ) AS g (plan_name, feature_name)
  JOIN subscription_plans p ON p.name = g.plan_name
  JOIN features f ON f.name = g.feature_name;

-- Enterprise includes every feature that exists.
INSERT INTO plan_features (plan_id, feature_id)
SELECT p.id, f.id
  FROM subscription_plans p CROSS JOIN features f
 WHERE p.name = 'Enterprise';

-- Defaults an operator is expected to change; the placeholder address uses a reserved
-- domain so that nothing is ever mailed to a stranger.
INSERT INTO settings (key, value) VALUES
    ('maintenance_mode', 'false'),
    ('support_email',    '"support@manas360.example"');
